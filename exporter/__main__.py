"""`python -m exporter` is the same program as the `lenses-hq-exporter` console script."""

from exporter.cli import main

raise SystemExit(main())
