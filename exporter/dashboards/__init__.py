"""Grafana dashboards for lenses-hq-exporter, written with grafana-foundation-sdk and rendered to JSON."""

import warnings

# The SDK warns on import that it prefers its v2 dashboard schema; Grafana's file provisioning reads the
# classic JSON model these dashboards use, so the warning is noise here.
warnings.filterwarnings("ignore", message="Prefer using dashboardv2", category=DeprecationWarning)
