"""Map package download on loopback: the box's downloader (firmware_py/gateway/download.py: HTTP
range requests, every byte written to the data directory and hashed with SHA-256, the size and
hash checked, the file synced and renamed) against a raw HTTP GET of the same file that keeps
nothing (aiohttp reading the body and dropping it), both in one run, taking turns.

The package is GENERATED sample data (``vci-portal map sample``: a sparse file), served by
aiohttp's FileResponse (sendfile) in its own process. A third row: the box's download broken
off at 30 % by the server and resumed with a Range request (no byte fetched twice).

Run: PYTHONPATH=. python bench/bench_maps.py [--size-mib 512] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = r"""
import sys
from aiohttp import web
path, cut = sys.argv[1], int(sys.argv[2])
state = {"cut": 0}

async def handle(request):
    if request.path == "/cut" and not request.headers.get("Range"):
        # the first whole answer breaks off after `cut` bytes: the link breaks
        resp = web.StreamResponse(headers={"Content-Length": str(size)})
        await resp.prepare(request)
        with open(path, "rb") as f:
            left = cut
            while left:
                block = f.read(min(left, 1 << 20))
                await resp.write(block)
                left -= len(block)
        request.transport.close()
        return resp
    return web.FileResponse(path)

import os
size = os.path.getsize(path)
app = web.Application()
app.router.add_get("/{name}", handle)
import asyncio

async def main():
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def raw_get(url: str) -> int:
    import aiohttp

    got = 0
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        async for chunk in response.content.iter_any():
            got += len(chunk)
    return got


async def box_download(url: str, size: int, sha256: str, directory: Path) -> Path:
    import aiohttp

    from firmware_py.gateway.download import Fetch, download

    fetch = Fetch(url, size, sha256, f"{sha256}.map", what="the map package", siblings="*.map*")
    async with aiohttp.ClientSession() as session:
        return await download(fetch, directory, session=session, backoff=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    from portal.map_cli import make_sample

    root = Path(tempfile.mkdtemp(prefix="vci-bench-maps-"))
    size = opts.size_mib * 2**20
    package = make_sample(root / "sample.map", size)
    h = hashlib.sha256()
    with package.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    sha256 = h.hexdigest()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(package), str(size * 3 // 10)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{int(server.stdout.readline())}"
        rows: dict[str, list[float]] = {"raw HTTP GET": [], "box download": [], "box, cut": []}
        for _ in range(opts.runs):
            for name, url in (
                ("raw HTTP GET", base + "/sample.map"),
                ("box download", base + "/sample.map"),
                ("box, cut", base + "/cut"),
            ):
                target = root / "box"
                shutil.rmtree(target, ignore_errors=True)
                started = time.perf_counter()
                if name == "raw HTTP GET":
                    assert asyncio.run(raw_get(url)) == size
                else:
                    path = asyncio.run(box_download(url, size, sha256, target))
                    assert path.stat().st_size == size
                rows[name].append(time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
    print(f"map package {opts.size_mib} MiB (sample, sparse) on loopback, {opts.runs} runs each")
    print(f"{'':<14} {'median s':>9} {'MB/s':>8}")
    for name, seconds in rows.items():
        median = statistics.median(seconds)
        print(f"{name:<14} {median:9.2f} {size / median / 1e6:8.0f}")
    raw = statistics.median(rows["raw HTTP GET"])
    print(f"box download / raw: {statistics.median(rows['box download']) / raw:.2f}x the time")


if __name__ == "__main__":
    main()
