"""lenses-hq-exporter: Prometheus series for Lenses HQ environments and Confluent Cloud Flink agents."""

import sys

from exporter import signals

if signals.starting_the_program(sys.argv):  # first thing: a SIGTERM during start-up then exits 0
    signals.install_early()

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lenses-hq-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
