"""A file server on 127.0.0.1 for the map update tests (Python's http.server in a thread): it
answers ``Range: bytes=N-`` with 206, can break the first answer off after ``cut_at`` bytes (the
connection closed mid-body), and keeps an access log of what it sent for each request, so a test
can show that no byte went out twice."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


@dataclass
class Served:
    range: str | None
    start: int
    sent: int = 0
    status: int = 0


@dataclass
class MapServer:
    path: Path
    cut_at: int | None = None
    """the first answer breaks off after this many bytes of the body"""
    log: list[Served] = field(default_factory=list)
    hold_at: int | None = None
    """the first answer stalls after this many bytes of the body until :attr:`release` is set
    (a test acts while the download is surely still under way: loopback is faster than a page)"""
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib's name
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/sample.map"

    def __enter__(self) -> MapServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        size = self.path.stat().st_size
        header = h.headers.get("Range")
        start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
        entry = Served(header, start, status=206 if header else 200)
        self.log.append(entry)
        h.send_response(entry.status)
        h.send_header("Content-Length", str(size - start))
        h.send_header("Accept-Ranges", "bytes")
        if header:
            h.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        h.end_headers()
        cut, self.cut_at = self.cut_at, None
        with self.path.open("rb") as f:
            f.seek(start)
            while block := f.read(CHUNK if cut is None else min(CHUNK, cut - entry.sent)):
                h.wfile.write(block)
                entry.sent += len(block)
                if self.hold_at is not None and entry.sent >= self.hold_at:
                    self.hold_at = None
                    h.wfile.flush()
                    self.release.wait(timeout=60)
                if cut is not None and entry.sent >= cut:
                    h.wfile.flush()
                    h.connection.shutdown(socket.SHUT_RDWR)  # the link breaks mid-body
                    h.close_connection = True
                    return
