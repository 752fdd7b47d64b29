"""The configuration package stands below the upstream wings: importing it loads none of them."""

from __future__ import annotations

import subprocess
import sys


def test_the_configuration_imports_no_wing() -> None:
    program = (
        "import sys, exporter.config\n"
        "wings = sorted(name for name in sys.modules if name.startswith(('exporter.lenses', "
        "'exporter.confluent', 'exporter.exposition', 'exporter.web')))\n"
        "print(','.join(wings))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
