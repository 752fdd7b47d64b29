"""The Confluent Cloud Flink wing: client, model, paged polling and metric families."""
