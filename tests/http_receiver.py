"""A real HTTP receiver on loopback (http.server in a thread) that records every request it gets."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """Requests a receiver got: (method, path, headers, body) in arrival order."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    def json_bodies(self) -> list[Any]:
        """Bodies that parse as JSON."""
        out = []
        for request in self.requests:
            with contextlib.suppress(ValueError):  # not JSON: only JSON bodies are returned
                out.append(json.loads(request["body"]))
        return out

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until ``count`` requests arrived (or the timeout passed); return them."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.requests)


@contextmanager
def http_receiver(status: int = 200) -> Iterator[tuple[str, Received]]:
    """Serve on 127.0.0.1:<free port>; yield (base URL, received requests); answer every request with ``status``."""
    received = Received(status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.requests.append(
                {
                    "method": "POST",
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": self.rfile.read(length).decode("utf-8", "replace"),
                }
            )
            self.send_response(received.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
