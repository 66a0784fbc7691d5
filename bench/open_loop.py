"""Open-loop (fixed-rate) HTTP load: request i is due at start + i / rate, whatever happened to
the ones before it, and its latency is counted from when it was due, not from when it could
be sent. A closed loop (wrk) sends the next request only after an answer, so a stalled server
also stalls the clock that should be measuring it ("coordinated omission"); here a stall shows
up in the latency of every request that fell due during it. wrk2 does this; it is not packaged
for Debian, so this is the same idea in Python: one thread, non-blocking sockets and one
`selectors` loop (asyncio's streams and tasks cost four times the CPU per request, which on a
2-core machine the server under test paid for).

    python -m bench.open_loop SPEC.json http://127.0.0.1:8000 --rate 300 --duration 10

SPEC.json is {"method": "GET", "paths": [...], "headers": {...}}; requests cycle through the
paths. One connection per request (gunicorn's sync workers close each one anyway), at most
`--max-inflight` at once: a request due while that many are open waits, and the wait counts.
Prints one line `BENCHJSON {...}` with the keys bench/api_bench.py reads from wrk, plus `rate`
(the target) and `max_lag_ms` (how late the generator itself sent a request: when that is
large the generator, not the server, was the bottleneck).
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import socket
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# How often in-flight requests are checked against --timeout (seconds).
_TIMEOUT_CHECK_S = 0.1


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    max_lag_s: float = 0.0


@dataclass
class Exchange:
    """One request on its own connection: sent, then read until the server closes it."""

    sock: socket.socket
    due: float
    raw: bytes
    sent: int = 0
    head: bytes = b""  # the answer's first bytes, for its status line
    size: int = 0


def request_bytes(method: str, path: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(head: bytes) -> int:
    """The status code of an answer's first bytes (`HTTP/1.1 200 OK…`); ValueError if none."""
    return int(head.split(b" ", 2)[1])


class Loop:
    """Requests in flight, driven by one selector."""

    def __init__(self, address: tuple[str, int], tally: Tally, max_inflight: int) -> None:
        self.address = address
        self.tally = tally
        self.max_inflight = max_inflight
        self.selector = selectors.DefaultSelector()
        self.inflight: dict[int, Exchange] = {}
        self.waiting: deque[tuple[float, bytes]] = deque()  # due while max_inflight were open

    def submit(self, due: float, raw: bytes) -> None:
        self.waiting.append((due, raw))
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self.waiting and len(self.inflight) < self.max_inflight:
            self._open(*self.waiting.popleft())

    def _open(self, due: float, raw: bytes) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(self.address)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.tally.errors["connect"] += 1
            return
        exchange = Exchange(sock, due, raw)
        self.inflight[sock.fileno()] = exchange
        self.selector.register(sock, selectors.EVENT_WRITE, exchange)

    def poll(self, timeout_s: float) -> None:
        for key, mask in self.selector.select(max(0.0, timeout_s)):
            exchange: Exchange = key.data
            try:
                if mask & selectors.EVENT_WRITE:
                    self._send(exchange)
                else:
                    self._receive(exchange)
            except OSError:
                self._end(exchange, "write" if mask & selectors.EVENT_WRITE else "read")
        self._start_waiting()

    def _send(self, exchange: Exchange) -> None:
        sock = exchange.sock
        if exchange.sent == 0 and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._end(exchange, "connect")
            return
        exchange.sent += sock.send(exchange.raw[exchange.sent :])
        if exchange.sent == len(exchange.raw):
            self.selector.modify(sock, selectors.EVENT_READ, exchange)

    def _receive(self, exchange: Exchange) -> None:
        chunk = exchange.sock.recv(65536)
        if chunk:
            if len(exchange.head) < 16:
                exchange.head += chunk[:16]
            exchange.size += len(chunk)
            return
        done = time.monotonic()
        try:
            status = status_of(exchange.head)
        except (ValueError, IndexError):
            self._end(exchange, "read")
            return
        self._end(exchange, None)
        tally = self.tally
        tally.latencies_s.append(done - exchange.due)
        tally.codes[str(status)] += 1
        tally.bytes += exchange.size
        if not 200 <= status < 300:
            tally.errors["status"] += 1

    def expire(self, timeout_s: float) -> None:
        """End every request in flight for longer than `timeout_s` since it was due."""
        cutoff = time.monotonic() - timeout_s
        for exchange in [e for e in self.inflight.values() if e.due < cutoff]:
            self._end(exchange, "timeout")

    def _end(self, exchange: Exchange, error: str | None) -> None:
        self.inflight.pop(exchange.sock.fileno(), None)
        self.selector.unregister(exchange.sock)
        exchange.sock.close()
        if error:
            self.tally.errors[error] += 1

    def busy(self) -> bool:
        return bool(self.inflight or self.waiting)


def run(
    base: str,
    method: str,
    paths: list[str],
    headers: dict[str, str],
    rate: float,
    duration_s: float,
    max_inflight: int,
    timeout_s: float,
) -> dict[str, object]:
    parts = urlsplit(base)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    raws = [request_bytes(method, p, parts.netloc, headers) for p in paths]
    tally = Tally()
    loop = Loop(address, tally, max_inflight)
    total = max(1, int(rate * duration_s))
    start = time.monotonic() + 0.05
    next_check = start + _TIMEOUT_CHECK_S
    sent = 0
    while sent < total or loop.busy():
        now = time.monotonic()
        while sent < total and start + sent / rate <= now:
            due = start + sent / rate
            tally.max_lag_s = max(tally.max_lag_s, now - due)
            loop.submit(due, raws[sent % len(raws)])
            sent += 1
        if now >= next_check:
            loop.expire(timeout_s)
            next_check = now + _TIMEOUT_CHECK_S
        until_due = start + sent / rate - now if sent < total else _TIMEOUT_CHECK_S
        loop.poll(min(until_due, next_check - now))
    elapsed = time.monotonic() - start
    lat = sorted(tally.latencies_s)

    def pct(p: float) -> int:
        if not lat:
            return 0
        return round(lat[min(len(lat) - 1, max(0, int(len(lat) * p / 100 + 0.5) - 1))] * 1e6)

    return {
        "requests": len(lat),
        "duration_us": round(elapsed * 1e6),
        "bytes": tally.bytes,
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "max_us": round(lat[-1] * 1e6) if lat else 0,
        "mean_us": round(sum(lat) / len(lat) * 1e6, 1) if lat else 0.0,
        "errors": {k: tally.errors[k] for k in ("connect", "read", "write", "status", "timeout")},
        "codes": dict(tally.codes),
        "rate": rate,
        "sent": total,
        "max_lag_ms": round(tally.max_lag_s * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.open_loop", description=__doc__)
    parser.add_argument("spec", type=Path)
    parser.add_argument("base")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-inflight", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    result = run(
        args.base,
        spec["method"],
        spec["paths"],
        spec.get("headers", {}),
        max(0.1, args.rate),
        min(args.duration, 60.0),
        args.max_inflight,
        args.timeout,
    )
    print("BENCHJSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
