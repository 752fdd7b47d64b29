"""Prometheus alert rules for lenses-hq-exporter, declared as data and rendered to a rule file."""
