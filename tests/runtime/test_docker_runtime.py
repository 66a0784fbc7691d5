"""DockerRuntime against the real Docker engine (skipped when none answers)."""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.domain.timefmt import utcnow
from tests.runtime.helpers import (
    INSTALLATION,
    SESSION,
    TEST_LABEL,
    read_logs_to_the_end,
    wait_until,
)
from workers.runtime.base import (
    LABEL_MANAGED,
    LABEL_NODE,
    AlreadyExists,
    ContainerRuntime,
    LaunchError,
    LaunchSpec,
    managed_labels,
)
from workers.runtime.docker import DockerRuntime

# A "trainer" that handles SIGTERM: leaves its loop and exits 0 (sleep is short so the
# shell gets to run the trap promptly).
TRAPS_TERM = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
IGNORES_TERM = "trap '' TERM; echo ready; while :; do sleep 0.1; done"


@pytest.fixture
def spec(make_spec: Callable[..., LaunchSpec], test_image: str) -> Callable[..., LaunchSpec]:
    def make(script: str, **kwargs: Any) -> LaunchSpec:
        kwargs.setdefault("image", test_image)
        return make_spec(["/bin/sh", "-c", script], **kwargs)

    return make


def ended(rt: DockerRuntime, name: str, timeout: float = 20) -> Any:
    return wait_until(lambda: (s := rt.inspect(name)) is not None and s.ended and s, timeout)


def test_launch_runs_and_records_exit_code(docker_runtime: DockerRuntime, spec: Any) -> None:
    s = spec("echo started; sleep 1")
    assert isinstance(docker_runtime, ContainerRuntime)
    state = docker_runtime.launch(s)
    assert state.name == s.name
    assert state.running and state.status == "running"
    assert state.exit_code is None and state.finished_at is None
    assert state.started_at is not None
    assert state.labels[LABEL_MANAGED] == "true"
    assert state.labels[LABEL_NODE] == docker_runtime.node
    assert state.labels["trainyard.job_type"] == "TRAIN"

    final = ended(docker_runtime, s.name)
    assert final.status == "exited" and final.exit_code == 0 and not final.oom_killed
    assert final.finished_at is not None and final.finished_at >= final.started_at
    assert final.finished_at - final.started_at >= timedelta(seconds=0.9)
    # Never auto-removed: the record outlives the process until the worker removes it.
    assert docker_runtime.inspect(s.name) is not None


def test_nonzero_exit_code(docker_runtime: DockerRuntime, spec: Any) -> None:
    s = spec("echo failing >&2; exit 3")
    docker_runtime.launch(s)
    final = ended(docker_runtime, s.name)
    assert final.exit_code == 3 and not final.oom_killed
    assert "failing" in docker_runtime.logs_tail(s.name)


def test_launch_twice_raises_already_exists_and_keeps_one_container(
    docker_runtime: DockerRuntime, docker_client: Any, spec: Any
) -> None:
    s = spec("sleep 30")
    first = docker_runtime.launch(s)
    with pytest.raises(AlreadyExists) as err:
        docker_runtime.launch(s)
    assert err.value.state.name == s.name
    assert err.value.state.running
    assert err.value.state.started_at == first.started_at  # the same, untouched container
    same_name = docker_client.api.containers(all=True, filters={"name": f"^/{s.name}$"})
    assert len(same_name) == 1


def test_created_but_not_started_container_is_started_by_launch(
    docker_runtime: DockerRuntime, docker_client: Any, spec: Any
) -> None:
    # Simulates a worker that died between create and start.
    s = spec("sleep 30")
    kwargs = docker_runtime._create_kwargs(s, managed_labels(s, docker_runtime.node, INSTALLATION))
    created = docker_client.containers.create(**kwargs)
    assert docker_runtime.inspect(s.name).status == "created"

    state = docker_runtime.launch(s)
    assert state.running
    assert docker_client.api.inspect_container(s.name)["Id"] == created.id


def test_created_container_of_another_attempt_is_not_started(
    docker_runtime: DockerRuntime, docker_client: Any, spec: Any
) -> None:
    s = spec("sleep 30")
    other = spec("sleep 30", name=s.name, labels={"trainyard.attempt": "2"})
    other_labels = managed_labels(other, docker_runtime.node, INSTALLATION)
    docker_client.containers.create(**docker_runtime._create_kwargs(other, other_labels))
    with pytest.raises(AlreadyExists) as err:
        docker_runtime.launch(s)
    assert err.value.state.status == "created"
    assert err.value.state.labels["trainyard.attempt"] == "2"


def test_stop_lets_a_trainer_that_handles_sigterm_exit(
    docker_runtime: DockerRuntime, spec: Any
) -> None:
    s = spec(TRAPS_TERM)
    docker_runtime.launch(s)
    wait_until(lambda: "ready" in docker_runtime.logs_tail(s.name), 10)
    grace = 10
    t0 = time.monotonic()
    final = docker_runtime.stop(s.name, grace_s=grace)
    elapsed = time.monotonic() - t0
    assert final is not None and not final.running and final.status == "exited"
    assert final.exit_code == 0  # its own exit, not a SIGKILL
    assert elapsed < grace + 2
    assert elapsed < 5, "a trainer that exits on SIGTERM must not wait out the grace period"
    assert "got-term" in docker_runtime.logs_tail(s.name)


def test_stop_terminates_a_process_without_a_handler(
    docker_runtime: DockerRuntime, spec: Any
) -> None:
    # PID 1 ignores signals it has no handler for; the runtime's init forwards SIGTERM to the
    # command, whose default action ends it. Without init this would wait out the grace.
    s = spec("exec sleep 60")
    docker_runtime.launch(s)
    t0 = time.monotonic()
    final = docker_runtime.stop(s.name, grace_s=10)
    assert time.monotonic() - t0 < 5
    assert final is not None and final.exit_code == 143  # 128 + SIGTERM


def test_stop_kills_after_grace_when_sigterm_is_ignored(
    docker_runtime: DockerRuntime, spec: Any
) -> None:
    s = spec(IGNORES_TERM)
    docker_runtime.launch(s)
    wait_until(lambda: "ready" in docker_runtime.logs_tail(s.name), 10)
    grace = 2
    t0 = time.monotonic()
    final = docker_runtime.stop(s.name, grace_s=grace)
    elapsed = time.monotonic() - t0
    assert final is not None and not final.running
    assert final.exit_code == 137  # SIGKILL
    assert not final.oom_killed
    assert grace - 0.5 <= elapsed < grace + 5


def test_stop_of_missing_or_ended_container(docker_runtime: DockerRuntime, spec: Any) -> None:
    assert docker_runtime.stop(f"trainyard-rt-{SESSION}-nope", grace_s=1) is None
    s = spec("exit 5")
    docker_runtime.launch(s)
    ended(docker_runtime, s.name)
    final = docker_runtime.stop(s.name, grace_s=1)
    assert final is not None and final.exit_code == 5


def test_oom_kill_is_reported(docker_runtime: DockerRuntime, spec: Any) -> None:
    # The shell holds the command substitution's 100 MB in memory: far over 16 MB.
    s = spec("x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}", memory_mb=16)
    docker_runtime.launch(s)
    final = ended(docker_runtime, s.name, timeout=60)
    assert final.oom_killed
    assert final.exit_code != 0


def test_container_is_hardened(
    docker_runtime: DockerRuntime,
    docker_client: Any,
    spec: Any,
    tmp_path: Path,
    out_dir: Path,
) -> None:
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "manifest.csv").write_text("id,label\n")
    dataset.chmod(0o755)
    script = (
        f"id -u > {out_dir}/uid; "
        f"cat {dataset}/manifest.csv > {out_dir}/manifest-copy; "
        f"(touch {dataset}/x 2>/dev/null && echo yes || echo no) > {out_dir}/dataset-writable; "
        f"(touch /rootfs-probe 2>/dev/null && echo yes || echo no) > {out_dir}/rootfs-writable; "
        f"(touch /tmp/probe && echo yes || echo no) > {out_dir}/tmp-writable; "
        f'echo "$HOME" > {out_dir}/home'
    )
    s = spec(script, dataset_dir=dataset, memory_mb=256, cpus=0.5)
    docker_runtime.launch(s)
    final = ended(docker_runtime, s.name)
    assert final.exit_code == 0, docker_runtime.logs_tail(s.name)

    # What the process saw.
    assert (out_dir / "uid").read_text().strip() == "1000"
    assert (out_dir / "manifest-copy").read_text() == "id,label\n"
    assert (out_dir / "dataset-writable").read_text().strip() == "no"
    assert (out_dir / "rootfs-writable").read_text().strip() == "no"
    assert (out_dir / "tmp-writable").read_text().strip() == "yes"
    assert (out_dir / "home").read_text().strip() == "/tmp"

    # What Docker was told.
    info = docker_client.api.inspect_container(s.name)
    config, host = info["Config"], info["HostConfig"]
    assert config["User"] == "1000:1000"
    assert config.get("NetworkDisabled") is True
    assert config["Labels"][TEST_LABEL] == SESSION
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert not host.get("CapAdd")
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"] == 512
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["MemorySwap"] == 256 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["AutoRemove"] is False
    assert host["Init"] is True
    assert host["RestartPolicy"]["Name"] in ("", "no")
    assert "/tmp" in host["Tmpfs"]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert set(mounts) == {str(out_dir), str(dataset)}
    assert mounts[str(out_dir)]["Source"] == str(out_dir) and mounts[str(out_dir)]["RW"] is True
    assert mounts[str(dataset)]["Source"] == str(dataset) and mounts[str(dataset)]["RW"] is False
    everything = str(info)
    assert "docker.sock" not in everything


def test_gpu_ids_become_a_device_request(
    docker_runtime: DockerRuntime, docker_client: Any, spec: Any
) -> None:
    s = spec("exit 0", gpu_ids=(0, 2))
    try:
        docker_runtime.launch(s)
    except LaunchError as exc:
        # This engine has no GPU driver: create succeeds, start fails, and the container is
        # left "created" (for the worker to record) rather than silently run without GPUs.
        assert exc.state is not None and exc.state.status == "created"
    requests = docker_client.api.inspect_container(s.name)["HostConfig"]["DeviceRequests"]
    assert len(requests) == 1
    assert requests[0]["DeviceIDs"] == ["0", "2"]
    assert requests[0]["Capabilities"] == [["gpu"]]


def test_only_leased_gpus_are_visible_whatever_the_image_says(
    docker_runtime: DockerRuntime,
    docker_client: Any,
    spec: Any,
    test_image: str,
    out_dir: Path,
) -> None:
    """An image that sets NVIDIA_VISIBLE_DEVICES=all (as CUDA base images do) on a host whose
    default runtime is nvidia would see every GPU: the container's own environment, which
    overrides the image's ENV, says "void" for a CPU job and the leased ids for a GPU job."""
    tag = f"trainyard/test-nvidia-all:{SESSION}"
    dockerfile = f"FROM {test_image}\nENV NVIDIA_VISIBLE_DEVICES=all\n".encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    cpu = spec(f'echo "$NVIDIA_VISIBLE_DEVICES" > {out_dir}/seen', image=tag)
    gpu = spec("exit 0", image=tag, gpu_ids=(0, 2))
    try:
        docker_runtime.launch(cpu)
        assert ended(docker_runtime, cpu.name).exit_code == 0, docker_runtime.logs_tail(cpu.name)
        assert (out_dir / "seen").read_text().strip() == "void"
        # Without a GPU driver on this engine the container stays "created" (see above).
        with contextlib.suppress(LaunchError):
            docker_runtime.launch(gpu)
        for s, expected in ((cpu, "void"), (gpu, "0,2")):
            env = docker_client.api.inspect_container(s.name)["Config"]["Env"]
            visible = [e for e in env if e.startswith("NVIDIA_VISIBLE_DEVICES=")]
            assert visible == [f"NVIDIA_VISIBLE_DEVICES={expected}"], env
    finally:
        for s in (cpu, gpu):
            docker_runtime.remove(s.name)
        docker_client.images.remove(tag)


def test_launch_errors(
    docker_runtime: DockerRuntime, docker_client: Any, spec: Any, node: str
) -> None:
    missing_image = spec("exit 0", image="trainyard/does-not-exist:never")
    with pytest.raises(LaunchError) as missing:
        docker_runtime.launch(missing_image)
    assert missing.value.code == "IMAGE_NOT_FOUND"
    assert str(missing.value) == f"image 'trainyard/does-not-exist:never' is not on node {node}"
    assert docker_runtime.inspect(missing_image.name) is None

    # Settings the engine refuses (more CPUs than the machine has): not the image's fault.
    too_many = replace(spec("exit 0"), cpus=float(os.cpu_count() or 1) * 1000)
    with pytest.raises(LaunchError) as refused:
        docker_runtime.launch(too_many)
    assert refused.value.code == "INVALID_RUNTIME_SETTINGS", refused.value
    assert docker_runtime.inspect(too_many.name) is None

    missing_dir = spec("exit 0", output_dir=Path(f"/nonexistent-{SESSION}"))
    with pytest.raises(LaunchError):
        docker_runtime.launch(missing_dir)
    assert docker_runtime.inspect(missing_dir.name) is None

    with pytest.raises(ValueError, match="node"):
        docker_runtime.launch(spec("exit 0", labels={LABEL_NODE: "some-other-node"}))

    # Never the engine's socket, even through a parent directory.
    for path in (Path("/"), Path("/var/run"), Path("/run")):
        sneaky = spec("exit 0", dataset_dir=path)
        with pytest.raises(LaunchError, match="Docker socket"):
            docker_runtime.launch(sneaky)
        assert docker_runtime.inspect(sneaky.name) is None


def test_images_are_the_engines_tags(docker_runtime: DockerRuntime, test_image: str) -> None:
    images = docker_runtime.images()
    assert images is not None and test_image in images and images == sorted(images)
    assert "<none>:<none>" not in images


def test_list_managed_filters_by_node(
    docker_runtime: DockerRuntime, docker_client: Any, spec: Any, node: str
) -> None:
    other = DockerRuntime(docker_client, node=f"{node}-other", installation=INSTALLATION)
    mine = spec("sleep 30")
    theirs = spec("sleep 30", labels={LABEL_NODE: other.node})
    docker_runtime.launch(mine)
    other.launch(theirs)

    assert {s.name for s in docker_runtime.list_managed(node)} == {mine.name}
    assert {s.name for s in docker_runtime.list_managed(other.node)} == {theirs.name}
    everyone = {s.name for s in docker_runtime.list_managed()}
    assert {mine.name, theirs.name} <= everyone
    state = next(s for s in docker_runtime.list_managed(node) if s.name == mine.name)
    assert state.running and state.labels[LABEL_NODE] == node


def test_wait_for_exit_events(docker_runtime: DockerRuntime, docker_client: Any, spec: Any) -> None:
    other = DockerRuntime(
        docker_client, node=f"{docker_runtime.node}-other", installation=INSTALLATION
    )
    since = utcnow()
    # Nothing of ours ends: returns [] after about the timeout.
    t0 = time.monotonic()
    assert docker_runtime.wait_for_exit_events(since, timeout_s=1) == []
    assert 0.5 < time.monotonic() - t0 < 4

    theirs = spec("exit 0", labels={LABEL_NODE: other.node})
    other.launch(theirs)
    s = spec("sleep 1; exit 2")
    docker_runtime.launch(s)
    # Blocks until the container dies (about 1 s), then returns it; the other node's container
    # is not reported here.
    t0 = time.monotonic()
    names = docker_runtime.wait_for_exit_events(utcnow(), timeout_s=15)
    assert names == [s.name]
    assert time.monotonic() - t0 < 10
    # Asking again with the earlier `since` replays history at once (at-least-once delivery).
    t0 = time.monotonic()
    assert docker_runtime.wait_for_exit_events(since, timeout_s=10) == [s.name]
    assert time.monotonic() - t0 < 3
    assert docker_runtime.inspect(s.name).exit_code == 2
    assert theirs.name in other.wait_for_exit_events(since, timeout_s=5)


def test_logs_tail(docker_runtime: DockerRuntime, spec: Any) -> None:
    # stdout and stderr are separate streams, so their relative order is only reliable with
    # a pause between them.
    s = spec(
        "echo to-stderr >&2; sleep 0.3; "
        "i=1; while [ $i -le 100 ]; do echo line-$i; i=$((i+1)); done"
    )
    docker_runtime.launch(s)
    ended(docker_runtime, s.name)
    tail = docker_runtime.logs_tail(s.name, lines=3).splitlines()
    assert tail == ["line-98", "line-99", "line-100"]
    assert len(docker_runtime.logs_tail(s.name).splitlines()) == 50
    assert docker_runtime.logs_tail(s.name, lines=200).splitlines()[0] == "to-stderr"
    assert docker_runtime.logs_tail(f"trainyard-rt-{SESSION}-nope") == ""


def test_logs_since_reads_while_it_runs_each_message_once(
    docker_runtime: DockerRuntime, spec: Any
) -> None:
    # Bursts of lines within the same second and within the same timestamp's reach: the cursor
    # (timestamp, messages taken at it) neither repeats nor drops one across reads.
    s = spec(
        "i=1; while [ $i -le 300 ]; do echo line-$i; i=$((i+1)); done; sleep 1.5; "
        "echo to-stderr >&2; sleep 0.3; echo last"
    )
    docker_runtime.launch(s)
    read, while_running, cursor = read_logs_to_the_end(docker_runtime, s.name)
    expected = [f"line-{i}" for i in range(1, 301)] + ["to-stderr", "last"]
    assert read.decode().splitlines() == expected
    assert b"line-300" in while_running  # read before the container ended
    assert docker_runtime.logs_since(s.name, cursor).data == b""
    assert docker_runtime.logs_since(f"trainyard-rt-{SESSION}-nope", None).data == b""


def test_logs_since_reads_from_the_start_after_a_cursor_it_did_not_write(
    docker_runtime: DockerRuntime, spec: Any
) -> None:
    """The cursor is stored where the job can write (app/joblogs.py): a forged one is read
    as none, never raised (that would stop the job's end being recorded)."""
    s = spec("echo one; echo two")
    docker_runtime.launch(s)
    ended(docker_runtime, s.name)
    for forged in (
        "garbage 1",
        "2026-13-45T99:00:00.000000000Z 1",
        "2026-01-01 1",
        "x y z",
        "stdout=garbage,1 stderr=2026-13-45T99:00:00.000000000Z,1",
        "stdout=,x stderr",
    ):
        got = docker_runtime.logs_since(s.name, forged)
        assert got.data.decode().splitlines() == ["one", "two"], forged
        stream, _, value = got.cursor.partition("=")
        stamp, _, count = value.partition(",")
        assert stream == "stdout" and stamp.endswith("Z") and count in ("1", "2"), got.cursor


def test_a_stderr_message_written_after_a_later_stdout_one_is_not_lost(
    docker_runtime: DockerRuntime, docker_client: Any, spec: Any
) -> None:
    """Docker stamps a message when its stream's copier reads it, and writes both streams to
    one log: a stderr line may land just after a stdout line stamped later. A read between
    the two writes has taken the stdout line and not yet seen the stderr one. The next read
    must still return the stderr line (one cursor for both streams skipped it as older than
    the cursor: a failing trainer's last stderr line went missing so). Here that read's
    state is set up exactly: the cursor a read of only the stdout line leaves."""
    s = spec("echo to-stderr >&2; sleep 0.3; echo to-stdout")
    docker_runtime.launch(s)
    ended(docker_runtime, s.name)
    raw = docker_client.api.logs(s.name, stdout=True, stderr=False, timestamps=True)
    stdout_stamp = raw.decode().split(" ", 1)[0]
    got = docker_runtime.logs_since(s.name, f"stdout={stdout_stamp},1")
    assert got.data == b"to-stderr\n"
    assert docker_runtime.logs_since(s.name, got.cursor).data == b""
    # And from the first byte, the two in the order Docker stamped them.
    assert docker_runtime.logs_since(s.name, None).data == b"to-stderr\nto-stdout\n"


def test_remove(docker_runtime: DockerRuntime, spec: Any) -> None:
    s = spec("sleep 60")
    docker_runtime.launch(s)
    docker_runtime.remove(s.name)  # running: removed anyway (docker rm -f)
    assert docker_runtime.inspect(s.name) is None
    docker_runtime.remove(s.name)  # already gone: no error
    # The name is free again.
    assert docker_runtime.launch(s).running


def test_another_installation_on_the_same_engine_and_node_is_invisible(
    docker_runtime: DockerRuntime, docker_client: Any, spec: Any, node: str
) -> None:
    """Two installations sharing one engine and one node name (the host's, by default):
    neither lists, waits on, nor adopts the other's containers."""
    foreign = DockerRuntime(docker_client, node=node, installation=f"other-{SESSION}")
    mine, theirs = spec("sleep 30"), spec("sleep 0.2")
    docker_runtime.launch(mine)
    since = utcnow()
    foreign.launch(theirs)
    assert {s.name for s in docker_runtime.list_managed(node)} == {mine.name}
    assert {s.name for s in docker_runtime.list_managed()} == {mine.name}
    assert {s.name for s in foreign.list_managed(node)} == {theirs.name}
    wait_until(lambda: foreign.inspect(theirs.name).ended, 10)
    assert docker_runtime.wait_for_exit_events(since, timeout_s=1) == []

    # A created, never started container of the other installation under a name we launch:
    # same job labels, but not ours, so it is reported and left alone, never started.
    clash = spec("sleep 30")
    foreign_labels = managed_labels(clash, node, foreign.installation)
    docker_client.containers.create(**foreign._create_kwargs(clash, foreign_labels))
    with pytest.raises(AlreadyExists):
        docker_runtime.launch(clash)
    assert docker_runtime.inspect(clash.name).status == "created"
