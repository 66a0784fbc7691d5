"""A Unix-socket proxy in front of the Docker engine, for tests that make the engine
unreachable for real: a worker with DOCKER_HOST=unix://<proxy socket> talks to Docker through
it; SIGKILL the proxy (by its PID) and every call fails with "connection refused" (the socket
file stays, nobody listens); start it again on the same path and the engine answers again.

    python tests/workers/docker_proxy.py LISTEN_SOCKET [ENGINE_SOCKET]
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ENGINE_SOCKET = "/var/run/docker.sock"


class DockerProxy:
    """The proxy as a child process of the test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DockerProxy:
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(self.path)], stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == b"ready", "the proxy did not start"
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)  # pass the half-close on; the other way goes on
    except OSError:
        for end in (source, target):
            end.close()


def _serve(listen: str, engine: str) -> None:
    if os.path.exists(listen):
        os.unlink(listen)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(listen)
    server.listen(64)
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(engine)
        except OSError:
            client.close()
            time.sleep(0.1)
            continue
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ENGINE_SOCKET)
