"""Fixtures for the container-runtime tests: a real Docker engine and real subprocesses.

Docker tests are skipped (with the reason) when no engine answers. Every container they create
carries a per-session label and a per-session node name, so the finalizers remove exactly ours
and `list_managed` assertions are not disturbed by other suites sharing the engine.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.helpers import (
    BASE_IMAGE,
    BUSYBOX_APPLETS,
    BUSYBOX_IMAGE,
    INSTALLATION,
    SESSION,
    TEST_LABEL,
)
from workers.runtime.base import LaunchSpec


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # any failure to reach an engine means "no Docker here"
        pytest.skip(f"no Docker engine answers (docker.from_env().ping() failed: {exc})")
    yield client
    # Belt and braces: whatever a test left behind under this session's label goes.
    for c in client.api.containers(all=True, filters={"label": f"{TEST_LABEL}={SESSION}"}):
        client.api.remove_container(c["Id"], force=True, v=True)
    client.close()


def _static_busybox() -> str | None:
    """A statically linked busybox on the host (Debian's busybox-static package), or None."""
    for candidate in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if not candidate or not os.path.exists(candidate):
            continue
        out = subprocess.run(["ldd", candidate], capture_output=True, text=True)
        if "not a dynamic executable" in out.stdout + out.stderr:
            return candidate
    return None


def _build_busybox_image(client: Any) -> None:
    busybox = _static_busybox()
    if busybox is None:
        pytest.skip(
            f"neither {BASE_IMAGE} (scripts/build-images.sh) nor a static busybox "
            "(apt-get install busybox-static) is available to make a test image"
        )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
    repo, tag = BUSYBOX_IMAGE.split(":")
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag)


@pytest.fixture(scope="session")
def test_image(docker_client: Any) -> str:
    """trainyard/base:bookworm when it was built (it has a shell and coreutils), else a tiny
    busybox image imported from the host, so these tests do not depend on the trainer image.
    TRAINYARD_TEST_BUSYBOX=1 forces the busybox image."""
    from docker.errors import ImageNotFound

    if os.environ.get("TRAINYARD_TEST_BUSYBOX") != "1":
        try:
            docker_client.images.get(BASE_IMAGE)
            return BASE_IMAGE
        except ImageNotFound:
            pass
    try:
        docker_client.images.get(BUSYBOX_IMAGE)
    except ImageNotFound:
        _build_busybox_image(docker_client)
    return BUSYBOX_IMAGE


@pytest.fixture(scope="session")
def node() -> str:
    return f"rt-test-{SESSION}"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    # The container runs as uid 1000; pytest's tmp dirs belong to whoever runs the tests.
    out.chmod(0o777)
    return out


@pytest.fixture
def make_spec(
    request: pytest.FixtureRequest, out_dir: Path, node: str
) -> Callable[..., LaunchSpec]:
    """LaunchSpec factory with a unique name and the labels a job would carry."""
    counter = iter(range(1000))

    def make(argv: list[str], **kwargs: Any) -> LaunchSpec:
        n = next(counter)
        name = kwargs.pop("name", None) or f"trainyard-rt-{SESSION}-{uuid.uuid4().hex[:6]}-{n}"
        labels = {
            "trainyard.model_uuid": "00000000-0000-0000-0000-000000000000",
            "trainyard.job_id": str(n),
            "trainyard.job_type": "TRAIN",
            "trainyard.attempt": "1",
            TEST_LABEL: SESSION,
            **kwargs.pop("labels", {}),
        }
        kwargs.setdefault("image", BASE_IMAGE)
        kwargs.setdefault("output_dir", out_dir)
        kwargs.setdefault("dataset_dir", None)
        return LaunchSpec(name=name, argv=argv, labels=labels, **kwargs)

    return make


@pytest.fixture
def docker_runtime(docker_client: Any, node: str) -> Iterator[Any]:
    from workers.runtime.docker import DockerRuntime

    yield DockerRuntime(docker_client, node=node, installation=INSTALLATION)
    # Remove what this test created (all our containers carry the session label).
    for c in docker_client.api.containers(all=True, filters={"label": f"{TEST_LABEL}={SESSION}"}):
        docker_client.api.remove_container(c["Id"], force=True, v=True)


@pytest.fixture
def process_runtime(node: str) -> Iterator[Any]:
    from workers.runtime.process import ProcessRuntime

    # Short path of our own: the waiter and fresh instances share it across processes.
    state_dir = Path(tempfile.mkdtemp(prefix="trainyard-rt-"))
    runtime = ProcessRuntime(state_dir, node, installation=INSTALLATION)
    yield runtime
    for state in runtime.list_managed():
        runtime.remove(state.name)  # kills what still runs
    shutil.rmtree(state_dir, ignore_errors=True)
