"""An HTTP server on the host's 127.0.0.1 that serves one update bundle with range requests, as a
portal's download server does, and breaks the first download off after ``cut_after`` bytes (the
connection closed mid-body): the box must go on from where it was with a ``Range`` request.
Records each request's ``Range`` header (``ranges``; None: none sent)."""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


class BundleServer:
    def __init__(self, bundle: Path, cut_after: int) -> None:
        self.bundle = bundle
        self.cut_after = cut_after
        self.ranges: list[str | None] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.get(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> BundleServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def get(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path != f"/{self.bundle.name}":
            handler.send_error(404)
            return
        size = self.bundle.stat().st_size
        asked = handler.headers.get("Range")
        with self.lock:
            first = not self.ranges
            self.ranges.append(asked)
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", asked or "")
        if match and int(match[1]) < size:
            start = int(match[1])
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(size - start))
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        stop = min(size, self.cut_after) if first else size
        with self.bundle.open("rb") as f:
            f.seek(start)
            left = stop - start
            while left > 0:
                block = f.read(min(CHUNK, left))
                handler.wfile.write(block)
                left -= len(block)
        if stop < size:
            handler.close_connection = True  # the link breaks off mid-body
