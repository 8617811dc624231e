"""A loopback HTTP proxy that answers the first N matching requests with an injected error, then forwards.

It stands in for an S3 or MLflow outage in front of the real loopback server: the client sees a genuine HTTP
503 (or any status), and later requests reach the real service. The client's Host header is forwarded as sent, so
S3 SigV4 signatures (which cover the host) still verify upstream.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
S3_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>injected by the test's fault proxy</Message></Error>"
)


@dataclass
class FaultProxy:
    """The proxy's address and what it did: requests answered with the fault, requests forwarded."""

    url: str
    injected: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)


@contextmanager
def fault_proxy(
    target: str,
    *,
    failures: int = 1,
    status: int = 503,
    body: bytes = S3_SLOW_DOWN,
    content_type: str = "application/xml",
    when: Callable[[str, str], bool] = lambda method, path: True,
) -> Iterator[FaultProxy]:
    """Serve ``http://127.0.0.1:<port>``: the first ``failures`` requests for which ``when(method, path)`` holds get
    ``status`` with ``body``; every other request is forwarded to ``target``."""
    upstream = urlsplit(target)
    lock = threading.Lock()
    proxy = FaultProxy(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _reply(self, code: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(code)
            for key, value in headers:
                if key.lower() not in _HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes | None:
            """The request body, by Content-Length or de-chunked (requests streams file uploads chunked)."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()  # the CRLF after each chunk
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers up to the blank line
                    pass
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else None

        def _handle(self) -> None:
            request_body = self._body()
            line = f"{self.command} {self.path}"
            with lock:
                inject = len(proxy.injected) < failures and when(self.command, self.path)
                (proxy.injected if inject else proxy.forwarded).append(line)
            if inject:
                self._reply(status, [("Content-Type", content_type)], body)
                return
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            conn.request(self.command, self.path, body=request_body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self._reply(response.status, response.getheaders(), data)
            conn.close()

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
