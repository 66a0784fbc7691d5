"""A real webhook receiver for tests: an HTTP server on a free port, in a thread.

It can start down (its port bound but not listening: connections are refused, as by a
stopped service) and come up later on the same port, answer any status, or hold every
request until released (a receiver that hangs).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.domain import webhooks


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers[webhooks.EVENT_ID_HEADER]

    def signed_by(self, secret: str) -> bool:
        """What a receiver checks (docs/webhooks.md): HMAC-SHA256 of "<timestamp>.<body>"."""
        return webhooks.verify(
            secret,
            self.headers[webhooks.TIMESTAMP_HEADER],
            self.body,
            self.headers.get(webhooks.SIGNATURE_HEADER, ""),
        )


class Receiver:
    def __init__(self, *, up: bool = True) -> None:
        self.status = 200
        self.requests: list[Received] = []  # every request, answered or not yet
        self.held = 0  # requests waiting for `release()` now
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), self._handler(), bind_and_activate=False
        )
        self.server.daemon_threads = True
        self.server.server_bind()  # the port is ours from now on; listening starts at up()
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook/secret-path?token=t0ken"
        self._thread: threading.Thread | None = None
        if up:
            self.up()

    def up(self) -> None:
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def hold(self) -> None:
        """From now on each request waits (unanswered) until `release()`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.release()
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()

    def answered(self) -> list[Received]:
        """The requests answered 2xx, that is, delivered."""
        with self._lock:
            return [r for r, ok in zip(self.requests, self._ok, strict=True) if ok]

    _ok: list[bool]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self
        receiver._ok = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(Received(dict(self.headers.items()), body))
                    receiver._ok.append(False)
                    index = len(receiver.requests) - 1
                    waiting = not receiver._open.is_set()
                    receiver.held += waiting
                if waiting:
                    receiver._open.wait(60)
                    with receiver._lock:
                        receiver.held -= 1
                status = receiver.status
                with receiver._lock:  # accepted (2xx) from here on, as the answer will say
                    receiver._ok[index] = 200 <= status < 300
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:  # quiet
                pass

        return Handler
