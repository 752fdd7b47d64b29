"""The fleet-scale benchmark: the exporter against thousands of environments and agents, next to the
physical floor of serving the same bytes and the standard prometheus_client way of producing them."""
