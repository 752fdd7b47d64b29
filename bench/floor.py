"""The floor: trivial aiohttp handlers serving the exporter's exposition from memory, as it is (text) or
compressed once at start (gzip, level 1 as the exporter does), in their own process.

`/metrics` streams the bytes in 1 MiB slices of a memoryview with a Content-Length: nothing is copied
before the socket, so it is the limit of serving those bytes with this stack on this machine. `/whole`
answers `web.Response(body=...)` with the same bytes, as a handler that returns one bytes object does; on
Python 3.11 asyncio joins and buffers a large body before it reaches the socket, which the difference
between the two shows."""

from __future__ import annotations

import argparse
import asyncio
import gzip
from pathlib import Path

from aiohttp import web

from bench.common import announce, until_terminated
from exporter.web.app import TEXT_CONTENT_TYPE, wants_gzip

SLICE = 1 << 20


async def serve(body: bytes) -> None:
    """Serve `/metrics` and `/whole` from memory until SIGTERM."""
    compressed = gzip.compress(body, compresslevel=1)

    def chosen(request: web.Request) -> tuple[bytes, dict[str, str]]:
        if wants_gzip(request.headers.get("Accept-Encoding", "")):
            return compressed, {"Content-Type": TEXT_CONTENT_TYPE, "Content-Encoding": "gzip"}
        return body, {"Content-Type": TEXT_CONTENT_TYPE}

    async def sliced(request: web.Request) -> web.StreamResponse:
        data, headers = chosen(request)
        view = memoryview(data)
        response = web.StreamResponse(headers=headers)
        response.content_length = len(data)
        await response.prepare(request)
        for start in range(0, len(data), SLICE):
            await response.write(view[start : start + SLICE])
        await response.write_eof()
        return response

    async def whole(request: web.Request) -> web.Response:
        data, headers = chosen(request)
        return web.Response(body=data, headers=headers)

    app = web.Application()
    app.router.add_get("/metrics", sliced)
    app.router.add_get("/whole", whole)
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
