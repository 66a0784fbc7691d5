"""Open-loop (fixed-rate) HTTP load: request i is due at start + i / rate, whatever happened to
the ones before it, and its latency is counted from when it was due, not from when it could
be sent. A closed loop (wrk) sends the next request only after an answer, so a stalled server
also stalls the clock that should be measuring it ("coordinated omission"); here a stall shows
up in the latency of every request that fell due during it. wrk2 does this; it is not packaged
for Debian, so this is the same idea in asyncio.

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
import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    max_lag_s: float = 0.0


def request_bytes(method: str, path: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def exchange(host: str, port: int, raw: bytes) -> tuple[int, int]:
    """Send one request on a new connection; return (status, bytes read)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = await (reader.readexactly(length) if length is not None else reader.read())
        return status, len(head) + len(body)
    finally:
        writer.close()


async def fire(
    due: float,
    host: str,
    port: int,
    raw: bytes,
    gate: asyncio.Semaphore,
    timeout_s: float,
    tally: Tally,
) -> None:
    loop = asyncio.get_running_loop()
    try:
        async with gate:
            status, size = await asyncio.wait_for(exchange(host, port, raw), timeout_s)
    except TimeoutError:
        tally.errors["timeout"] += 1
        return
    except ConnectionRefusedError:
        tally.errors["connect"] += 1
        return
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        tally.errors["read"] += 1
        return
    tally.latencies_s.append(loop.time() - due)
    tally.codes[str(status)] += 1
    tally.bytes += size
    if not 200 <= status < 300:
        tally.errors["status"] += 1


async def run(
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
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raws = [request_bytes(method, p, parts.netloc, headers) for p in paths]
    gate = asyncio.Semaphore(max_inflight)
    tally = Tally()
    loop = asyncio.get_running_loop()
    total = max(1, int(rate * duration_s))
    start = loop.time() + 0.05
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            tally.max_lag_s = max(tally.max_lag_s, -delay)
        raw = raws[i % len(raws)]
        tasks.append(asyncio.create_task(fire(due, host, port, raw, gate, timeout_s, tally)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
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
    result = asyncio.run(
        run(
            args.base,
            spec["method"],
            spec["paths"],
            spec.get("headers", {}),
            max(0.1, args.rate),
            min(args.duration, 60.0),
            args.max_inflight,
            args.timeout,
        )
    )
    print("BENCHJSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
