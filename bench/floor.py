"""The floor: a trivial aiohttp handler serving the exporter's exposition from memory, as it is (text) or
compressed once at start (gzip, level 1 as the exporter does). Nothing can serve those bytes faster from
this stack on this machine, so it is the physical limit the exporter is measured against."""

from __future__ import annotations

import argparse
import asyncio
import gzip
from pathlib import Path

from aiohttp import web

from bench.common import announce, until_terminated
from exporter.web import TEXT_CONTENT_TYPE, wants_gzip


async def serve(body: bytes) -> None:
    """Serve `/metrics` from memory until SIGTERM."""
    compressed = gzip.compress(body, compresslevel=1)

    async def metrics(request: web.Request) -> web.Response:
        if wants_gzip(request.headers.get("Accept-Encoding", "")):
            return web.Response(
                body=compressed, headers={"Content-Type": TEXT_CONTENT_TYPE, "Content-Encoding": "gzip"}
            )
        return web.Response(body=body, headers={"Content-Type": TEXT_CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    announce(port=runner.addresses[0][1], text_bytes=len(body), gzip_bytes=len(compressed))
    try:
        await until_terminated()
    finally:
        await runner.cleanup()


def main() -> None:
    """`python -m bench.floor BODY_FILE`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("body", type=Path)
    asyncio.run(serve(parser.parse_args().body.read_bytes()))


if __name__ == "__main__":
    main()
