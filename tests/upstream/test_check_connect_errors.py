"""`check --connect` says why an upstream refused, on one line, and prints nothing an upstream could use to
forge a line or drive the terminal. The CLI runs as a subprocess against the simulator over real HTTP."""

from __future__ import annotations

from pathlib import Path

from exporter.simulator.lenses import error_body
from tests.service.test_cli import HQ_TOKEN, run_check, simulator, simulator_config

LISTING = "/v1/environments"


async def test_an_hq_error_object_is_printed_with_its_type_title_and_request_id(tmp_path: Path) -> None:
    async with simulator() as sim:
        body = error_body(
            403, "hq-req-42", "missing_agent_capabilities", "The agent lacks the metrics capability"
        )
        sim.faults.script(
            403, api="lenses", path=LISTING, body=body, headers={"X-Request-Id": ""}, count=None
        )
        config = simulator_config(tmp_path, sim)
        code, out, err = await run_check(f"--config.file={config}", "--connect")
    assert code == 1, (out, err)
    (line,) = [line for line in out.splitlines() if line.startswith("lenses/hq: ")]
    assert line.startswith("lenses/hq: auth failed: "), line
    assert "missing_agent_capabilities" in line
    assert "The agent lacks the metrics capability" in line
    assert "(request id hq-req-42)" in line


async def test_hostile_upstream_text_cannot_forge_a_line_or_reach_the_terminal(tmp_path: Path) -> None:
    async with simulator() as sim:
        body = error_body(
            403,
            "x\nlenses/hq: reachable (request id forged)\x1b[2J",
            "forbidden\r\nconfluent/flink-0: reachable",
            f"\x1b]0;owned\x07echo {HQ_TOKEN}\u202e",
        )
        sim.faults.script(
            403, api="lenses", path=LISTING, body=body, headers={"X-Request-Id": ""}, count=None
        )
        config = simulator_config(tmp_path, sim)
        code, out, err = await run_check(f"--config.file={config}", "--connect")
    assert code == 1, (out, err)
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("lenses/hq: ")] == [
        next(line for line in lines if line.startswith("lenses/hq: auth failed"))
    ]
    assert not any(line.startswith("lenses/hq: reachable") for line in lines), out
    assert sum(line.startswith("confluent/flink-0: ") for line in lines) == 1, out
    for forbidden in ("\x1b", "\x07", "\r", "\u202e", HQ_TOKEN):
        assert forbidden not in out + err, repr(forbidden)
