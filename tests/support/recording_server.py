"""A local HTTP server that records every request and answers as its path says (security tests).

`/echo`: 200 with the request's headers, query and body as JSON, and its Authorization header
echoed in the `x-echo-authorization` response header. `/fail`: 500 with the request line and
headers in the body. `/flaky`: as `/fail` the first time, then as `/echo` (a retry succeeds).
`/bytes/<n>`: n bytes (`?stream=1`: without a length). `/trickle`: headers at once, then a byte
every 0.2 s for a minute. `/redirect?to=<url>&code=<status>`: a redirect.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@dataclasses.dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass
class RecordingServer:
    url: str
    received: list[Received]

    def paths(self) -> list[str]:
        return [r.path for r in self.received]


class _Handler(http.server.BaseHTTPRequestHandler):
    received: list[Received]

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.received.append(Received(self.command, self.path, headers, body))
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        flaky = url.path == "/flaky"
        first = (
            flaky
            and sum(urllib.parse.urlsplit(r.path).path == "/flaky" for r in self.received) == 1
        )
        if url.path == "/echo" or (flaky and not first):
            echo = {"headers": headers, "query": query, "body": body.decode(errors="replace")}
            extra = {"x-echo-authorization": headers.get("authorization", "")}
            self._send(200, json.dumps(echo).encode(), "application/json", extra)
        elif url.path == "/fail" or first:
            text = f"cannot serve {self.command} {self.path} with {headers}"
            self._send(500, text.encode(), "text/plain")
        elif url.path.startswith("/bytes/"):
            data = b"x" * int(url.path.rsplit("/", 1)[1])
            if query.get("stream"):  # No length: the body ends when the connection closes.
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(data)
            else:
                self._send(200, data, "text/plain")
        elif url.path == "/trickle":
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            try:
                for _ in range(300):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass  # The client gave up, as it should.
        elif url.path == "/redirect":
            self._send(int(query.get("code", "302")), b"", "text/plain", {"location": query["to"]})
        else:
            self._send(404, b"no such thing", "text/plain")

    def _send(
        self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def recording_server(host: str = "127.0.0.1") -> Iterator[RecordingServer]:
    received: list[Received] = []
    handler = type("Handler", (_Handler,), {"received": received})
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RecordingServer(f"http://{host}:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()
