"""A TCP proxy on loopback that delays every byte by a fixed time in each direction (a WAN link
for benchmarks). Order is kept; throughput is not limited."""

from __future__ import annotations

import asyncio
import time


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(pump())
    try:
        while chunk := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, chunk))
    except ConnectionError:
        pass
    queue.put_nowait((0.0, b""))
    await sender


async def serve(target_port: int, delay: float, ready: asyncio.Future[int]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay), return_exceptions=True
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ready.set_result(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def start_in_thread(target_port: int, delay: float) -> int:
    """Run a proxy to ``target_port`` in a daemon thread; returns its port."""
    import threading

    loop = asyncio.new_event_loop()
    ready: asyncio.Future[int] = loop.create_future()
    threading.Thread(
        target=lambda: loop.run_until_complete(serve(target_port, delay, ready)), daemon=True
    ).start()
    while not ready.done():
        time.sleep(0.01)
    return ready.result()
