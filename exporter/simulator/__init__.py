"""A bundled upstream simulator: Lenses HQ and Confluent Flink agents, seeded, changing, with fault switches;
what the demo, the tests and the benchmarks run against."""
