"""ProcessRuntime with real subprocesses: the same contract as Docker, without an engine."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.domain.timefmt import utcnow
from tests.runtime.helpers import INSTALLATION, wait_until
from workers.runtime.base import (
    LABEL_MANAGED,
    LABEL_NODE,
    AlreadyExists,
    ContainerRuntime,
    LaunchError,
    LaunchSpec,
    managed_labels,
    ownership_labels,
)
from workers.runtime.process import ProcessRuntime

HANDLES_TERM = """
import signal, sys, time
def on_term(signum, frame):
    print("got-term", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""
IGNORES_TERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def spec(make_spec: Callable[..., LaunchSpec]) -> Callable[..., LaunchSpec]:
    """A spec running a Python snippet; "python3" is mapped to the worker's interpreter."""

    def make(code: str, **kwargs: Any) -> LaunchSpec:
        return make_spec(["python3", "-c", code], **kwargs)

    return make


def ended(rt: ProcessRuntime, name: str, timeout: float = 20) -> Any:
    return wait_until(lambda: (s := rt.inspect(name)) is not None and s.ended and s, timeout)


def ready(rt: ProcessRuntime, name: str) -> None:
    wait_until(lambda: "ready" in rt.logs_tail(name), 10)


def record(rt: ProcessRuntime, name: str) -> dict[str, Any]:
    return json.loads((rt.state_dir / f"{name}.json").read_text())


def test_launch_runs_and_records_exit_code(process_runtime: ProcessRuntime, spec: Any) -> None:
    s = spec("import sys, time; print(sys.executable); time.sleep(0.5)")
    assert isinstance(process_runtime, ContainerRuntime)
    state = process_runtime.launch(s)
    assert state.running and state.status == "running"
    assert state.exit_code is None and state.started_at is not None
    assert state.labels[LABEL_MANAGED] == "true"
    assert state.labels[LABEL_NODE] == process_runtime.node
    assert state.labels["trainyard.job_id"] == s.labels["trainyard.job_id"]

    final = ended(process_runtime, s.name)
    assert final.status == "exited" and final.exit_code == 0 and not final.oom_killed
    assert final.finished_at is not None and final.finished_at > final.started_at
    # "python3" ran as the worker's own interpreter.
    assert process_runtime.logs_tail(s.name).strip() == sys.executable


def test_nonzero_exit_code_and_logs(process_runtime: ProcessRuntime, spec: Any) -> None:
    s = spec("import sys; print('out'); print('bad input', file=sys.stderr); sys.exit(3)")
    process_runtime.launch(s)
    final = ended(process_runtime, s.name)
    assert final.exit_code == 3 and not final.oom_killed
    assert process_runtime.logs_tail(s.name).splitlines() == ["out", "bad input"]


def test_launch_twice_raises_already_exists_and_runs_once(
    process_runtime: ProcessRuntime, spec: Any, out_dir: Path
) -> None:
    marker = out_dir / "starts"
    s = spec(f"open({str(marker)!r}, 'a').write('x'); import time; time.sleep(30)")
    first = process_runtime.launch(s)
    with pytest.raises(AlreadyExists) as err:
        process_runtime.launch(s)
    assert err.value.state.running and err.value.state.started_at == first.started_at
    time.sleep(0.5)
    assert marker.read_text() == "x"

    process_runtime.stop(s.name, grace_s=1)
    with pytest.raises(AlreadyExists) as err:
        process_runtime.launch(s)  # ended, but the name is still taken until remove()
    assert err.value.state.status == "exited"
    assert marker.read_text() == "x"


def test_a_created_record_left_by_a_crash_is_started_by_launch(
    process_runtime: ProcessRuntime, spec: Any
) -> None:
    s = spec("import time; time.sleep(30)")
    # What a launcher that died right after writing the record leaves behind.
    (process_runtime.state_dir / f"{s.name}.json").write_text(
        json.dumps(
            {
                "name": s.name,
                "labels": managed_labels(s, process_runtime.node, INSTALLATION),
                "status": "created",
                "command": [],
                "created_at": utcnow().isoformat(),
            }
        )
    )
    assert process_runtime.inspect(s.name).status == "created"
    assert process_runtime.launch(s).running


def test_stop_lets_a_trainer_that_handles_sigterm_exit(
    process_runtime: ProcessRuntime, spec: Any
) -> None:
    s = spec(HANDLES_TERM)
    process_runtime.launch(s)
    ready(process_runtime, s.name)
    grace = 10
    t0 = time.monotonic()
    final = process_runtime.stop(s.name, grace_s=grace)
    elapsed = time.monotonic() - t0
    assert final is not None and final.status == "exited" and not final.running
    assert final.exit_code == 0
    assert elapsed < 3, "a process that exits on SIGTERM must not wait out the grace period"
    assert "got-term" in process_runtime.logs_tail(s.name)
    assert record(process_runtime, s.name)["stop_requested_at"]


def test_stop_without_handler_ends_with_143(process_runtime: ProcessRuntime, spec: Any) -> None:
    s = spec("import time; print('ready', flush=True); time.sleep(60)")
    process_runtime.launch(s)
    ready(process_runtime, s.name)
    final = process_runtime.stop(s.name, grace_s=10)
    assert final is not None and final.exit_code == 143  # 128 + SIGTERM, as Docker reports


def test_stop_kills_after_grace_when_sigterm_is_ignored(
    process_runtime: ProcessRuntime, spec: Any
) -> None:
    s = spec(IGNORES_TERM)
    process_runtime.launch(s)
    ready(process_runtime, s.name)
    grace = 1.5
    t0 = time.monotonic()
    final = process_runtime.stop(s.name, grace_s=grace)
    elapsed = time.monotonic() - t0
    assert final is not None and not final.running
    assert final.exit_code == 137 and not final.oom_killed
    assert grace <= elapsed < grace + 3


def test_stop_signals_the_whole_process_group(
    process_runtime: ProcessRuntime, make_spec: Any, out_dir: Path
) -> None:
    # A shell that ignores SIGTERM with a child that does not: the child must get it too.
    s = make_spec(["/bin/sh", "-c", "trap '' TERM; sleep 60 & echo ready; wait; sleep 60"])
    process_runtime.launch(s)
    ready(process_runtime, s.name)
    pgid = record(process_runtime, s.name)["pgid"]
    final = process_runtime.stop(s.name, grace_s=1)
    assert final is not None and final.ended
    wait_until(lambda: _group_gone(pgid), 5)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_processes_left_in_the_group_die_with_the_main_one(
    process_runtime: ProcessRuntime, make_spec: Any
) -> None:
    # As in a container: when PID 1 ends, what it left behind goes too.
    s = make_spec(["/bin/sh", "-c", "sleep 60 & exit 4"])
    process_runtime.launch(s)
    final = ended(process_runtime, s.name)
    assert final.exit_code == 4
    wait_until(lambda: _group_gone(record(process_runtime, s.name)["pgid"]), 5)


def test_stop_of_missing_or_ended(process_runtime: ProcessRuntime, spec: Any) -> None:
    assert process_runtime.stop("trainyard-rt-nope", grace_s=1) is None
    s = spec("raise SystemExit(5)")
    process_runtime.launch(s)
    ended(process_runtime, s.name)
    final = process_runtime.stop(s.name, grace_s=1)
    assert final is not None and final.exit_code == 5


def test_environment_and_gpus(
    process_runtime: ProcessRuntime, spec: Any, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINYARD_WORKER_SECRET", "do-not-leak")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "all")
    code = (
        "import json, os; json.dump({k: os.environ.get(k) for k in "
        "('CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES', 'TRAINYARD_WORKER_SECRET', "
        "'JOB_PARAM', 'PATH')}"
        ", open('env-' + os.environ['JOB_PARAM'] + '.json', 'w')); print(os.getcwd())"
    )
    gpu = spec(code, gpu_ids=(0, 2), env={"JOB_PARAM": "gpu"})
    cpu = spec(code, env={"JOB_PARAM": "cpu"})
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES"):  # the platform's to set
        spec(code, gpu_ids=(0, 2), env={"CUDA_VISIBLE_DEVICES": "5"})
    for s in (gpu, cpu):
        process_runtime.launch(s)
        assert ended(process_runtime, s.name).exit_code == 0, process_runtime.logs_tail(s.name)
    # cwd is the output dir (relative writes land there).
    assert process_runtime.logs_tail(gpu.name).strip() == str(out_dir)
    seen_gpu = json.loads((out_dir / "env-gpu.json").read_text())
    seen_cpu = json.loads((out_dir / "env-cpu.json").read_text())
    assert seen_gpu["CUDA_VISIBLE_DEVICES"] == "0,2"  # the lease, not the worker's "7"
    assert seen_cpu["CUDA_VISIBLE_DEVICES"] == ""  # set, and empty: no GPU for a CPU job
    assert seen_gpu["NVIDIA_VISIBLE_DEVICES"] == "0,2"  # as the Docker runtime sets it
    assert seen_cpu["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert seen_gpu["TRAINYARD_WORKER_SECRET"] is None  # the worker's env does not leak
    assert seen_gpu["PATH"] == os.environ["PATH"]


def test_a_fresh_runtime_instance_sees_a_running_process_and_can_stop_it(
    process_runtime: ProcessRuntime, spec: Any, node: str
) -> None:
    s = spec(HANDLES_TERM)
    process_runtime.launch(s)
    ready(process_runtime, s.name)

    # As after a worker restart: nothing shared but the state directory.
    fresh = ProcessRuntime(process_runtime.state_dir, node, installation=INSTALLATION)
    state = fresh.inspect(s.name)
    assert state is not None and state.running and state.status == "running"
    assert [x.name for x in fresh.list_managed(node)] == [s.name]
    final = fresh.stop(s.name, grace_s=5)
    # The waiter (not the launching instance) collected the real exit code.
    assert final is not None and final.exit_code == 0


def test_exit_while_no_waiter_is_alive_is_exited_with_unknown_code(
    process_runtime: ProcessRuntime, spec: Any
) -> None:
    s = spec("import time; print('ready', flush=True); time.sleep(60)")
    process_runtime.launch(s)
    ready(process_runtime, s.name)
    rec = record(process_runtime, s.name)
    os.kill(rec["waiter_pid"], signal.SIGKILL)  # e.g. the machine's init killed everything
    os.kill(rec["pid"], signal.SIGKILL)

    final = wait_until(lambda: (st := process_runtime.inspect(s.name)).ended and st, 10)
    assert final.status == "exited" and final.exit_code == -1
    assert final.finished_at is not None and "unknown" in final.error
    # Recorded once: a second look gives the same answer (the finish time is not moving).
    again = process_runtime.inspect(s.name)
    assert again.exit_code == -1 and again.finished_at == final.finished_at


def test_a_reused_pid_is_not_taken_for_the_job(process_runtime: ProcessRuntime) -> None:
    # The record's pid is alive (this test process) but with another start-time token.
    name = "trainyard-rt-pid-reuse"
    (process_runtime.state_dir / f"{name}.json").write_text(
        json.dumps(
            {
                "name": name,
                "labels": ownership_labels(INSTALLATION, process_runtime.node),
                "status": "running",
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "token": "some-other-boot:12345",
                "started_at": utcnow().isoformat(),
            }
        )
    )
    state = process_runtime.inspect(name)
    assert state is not None and not state.running and state.exit_code == -1
    # And stop must not signal our pid / process group.
    assert process_runtime.stop(name, grace_s=0.1).exit_code == -1


def test_memory_limit_and_oom_report(process_runtime: ProcessRuntime, spec: Any) -> None:
    s = spec("x = bytearray(1024 * 1024 * 1024)", memory_mb=128)
    process_runtime.launch(s)
    final = ended(process_runtime, s.name)
    assert final.exit_code == 1
    assert final.oom_killed
    assert "MemoryError" in process_runtime.logs_tail(s.name)

    fine = spec("x = bytearray(16 * 1024 * 1024)", memory_mb=128)
    process_runtime.launch(fine)
    final = ended(process_runtime, fine.name)
    assert final.exit_code == 0 and not final.oom_killed


def test_launch_errors(process_runtime: ProcessRuntime, make_spec: Any, spec: Any) -> None:
    missing = make_spec(["/nonexistent/trainer", "--x"])
    with pytest.raises(LaunchError) as err:
        process_runtime.launch(missing)
    assert err.value.state is not None and err.value.state.exit_code == 127
    assert "nonexistent" in err.value.state.error

    with pytest.raises(LaunchError):
        process_runtime.launch(spec("pass", output_dir=Path("/nonexistent-output-dir")))
    with pytest.raises(LaunchError):
        process_runtime.launch(make_spec([]))
    with pytest.raises(ValueError, match="node"):
        process_runtime.launch(spec("pass", labels={LABEL_NODE: "another-node"}))
    with pytest.raises(ValueError):
        spec("pass", name="../escape")


def test_entrypoint_stands_in_for_the_image(
    process_runtime: ProcessRuntime, make_spec: Any, node: str
) -> None:
    rt = ProcessRuntime(
        process_runtime.state_dir,
        node,
        installation=INSTALLATION,
        entrypoint=["python3", "-c", "import sys; print(sys.argv)"]
    )
    s = make_spec(["--job-type", "TRAIN"])
    rt.launch(s)
    assert ended(rt, s.name).exit_code == 0
    assert rt.logs_tail(s.name).strip() == "['-c', '--job-type', 'TRAIN']"


def test_list_managed_filters_by_node(
    process_runtime: ProcessRuntime, spec: Any, node: str
) -> None:
    other = ProcessRuntime(
        process_runtime.state_dir, f"{node}-other", installation=INSTALLATION
    )
    mine = spec("import time; time.sleep(30)")
    theirs = spec("import time; time.sleep(30)", labels={LABEL_NODE: other.node})
    process_runtime.launch(mine)
    other.launch(theirs)
    assert [s.name for s in process_runtime.list_managed(node)] == [mine.name]
    assert [s.name for s in process_runtime.list_managed(other.node)] == [theirs.name]
    assert {s.name for s in process_runtime.list_managed()} == {mine.name, theirs.name}


def test_wait_for_exit_events(process_runtime: ProcessRuntime, spec: Any, node: str) -> None:
    since = utcnow()
    t0 = time.monotonic()
    assert process_runtime.wait_for_exit_events(since, timeout_s=0.5) == []
    assert 0.4 < time.monotonic() - t0 < 2

    other = ProcessRuntime(
        process_runtime.state_dir, f"{node}-other", installation=INSTALLATION
    )
    other.launch(spec("pass", labels={LABEL_NODE: other.node}))
    s = spec("import time; time.sleep(0.5); raise SystemExit(2)")
    process_runtime.launch(s)
    assert process_runtime.wait_for_exit_events(since, timeout_s=10) == [s.name]
    assert process_runtime.inspect(s.name).exit_code == 2
    # A later window does not report it again.
    assert process_runtime.wait_for_exit_events(utcnow(), timeout_s=0.2) == []


def test_logs_tail(process_runtime: ProcessRuntime, spec: Any) -> None:
    s = spec("for i in range(1, 20001): print(f'line-{i}')")
    process_runtime.launch(s)
    ended(process_runtime, s.name)
    assert process_runtime.logs_tail(s.name, lines=2).splitlines() == ["line-19999", "line-20000"]
    assert len(process_runtime.logs_tail(s.name).splitlines()) == 50
    assert process_runtime.logs_tail("trainyard-rt-nope") == ""


def test_logs_since_reads_while_it_runs_each_byte_once(
    process_runtime: ProcessRuntime, spec: Any
) -> None:
    s = spec(
        "import time\nfor i in range(1, 301): print(f'line-{i}')\n"
        "time.sleep(1.5)\nprint('last')"
    )
    process_runtime.launch(s)
    read, cursor, while_running = b"", None, b""
    while True:
        running = not process_runtime.inspect(s.name).ended
        got = process_runtime.logs_since(s.name, cursor)
        read, cursor = read + got.data, got.cursor
        if running:
            while_running = read
        elif not got.data:
            break
        time.sleep(0.05)
    assert read.decode().splitlines() == [f"line-{i}" for i in range(1, 301)] + ["last"]
    assert b"line-300" in while_running
    assert process_runtime.logs_since("trainyard-rt-nope", None).data == b""


def test_logs_since_reads_from_the_start_after_a_cursor_it_did_not_write(
    process_runtime: ProcessRuntime, spec: Any
) -> None:
    """The cursor is stored where the job can write (app/joblogs.py): a forged one is read
    as none, never raised."""
    s = spec("print('one'); print('two')")
    process_runtime.launch(s)
    wait_until(lambda: process_runtime.inspect(s.name).ended, 20)
    for forged in ("9" * 5000, "\u00b2", "-5", "12x"):
        got = process_runtime.logs_since(s.name, forged)
        assert got.data.decode().splitlines() == ["one", "two"], forged
        assert got.cursor == str(len(got.data))


def test_remove(process_runtime: ProcessRuntime, spec: Any) -> None:
    s = spec("import time; print('ready', flush=True); time.sleep(60)")
    process_runtime.launch(s)
    ready(process_runtime, s.name)
    pgid = record(process_runtime, s.name)["pgid"]
    process_runtime.remove(s.name)  # running: killed, like docker rm -f
    assert process_runtime.inspect(s.name) is None
    assert process_runtime.logs_tail(s.name) == ""
    wait_until(lambda: _group_gone(pgid), 5)
    process_runtime.remove(s.name)  # already gone: no error
    assert process_runtime.launch(s).running  # the name is free again


def test_another_installation_sharing_the_state_dir_is_invisible(
    process_runtime: ProcessRuntime, spec: Any, node: str
) -> None:
    foreign = ProcessRuntime(process_runtime.state_dir, node, installation="another-one")
    mine = spec("import time; time.sleep(30)")
    theirs = spec("import time; time.sleep(30)")
    process_runtime.launch(mine)
    foreign.launch(theirs)
    assert [s.name for s in process_runtime.list_managed(node)] == [mine.name]
    assert [s.name for s in process_runtime.list_managed()] == [mine.name]
    assert [s.name for s in foreign.list_managed()] == [theirs.name]
    foreign.remove(theirs.name)


def test_scratch_folder_is_given_and_removed_with_the_record(
    spec: Any, node: str, out_dir: Path, tmp_path: Path
) -> None:
    scratch_root = tmp_path / "scratch"
    rt = ProcessRuntime(
        tmp_path / "state", node, installation=INSTALLATION, scratch_root=scratch_root
    )
    code = (
        "import os, tempfile\n"
        f"open({str(out_dir)!r} + '/seen', 'w').write("
        "tempfile.gettempdir() + '|' + os.environ['TRAINYARD_SCRATCH_DIR'])\n"
        "open(os.path.join(os.environ['TMPDIR'], 'work'), 'w').write('x')\n"
    )
    s = spec(code, env={"OMP_NUM_THREADS": "2"})
    rt.launch(s)
    assert ended(rt, s.name).exit_code == 0, rt.logs_tail(s.name)
    scratch = scratch_root / s.name
    assert (out_dir / "seen").read_text() == f"{scratch}|{scratch}"
    assert (scratch / "work").read_text() == "x"
    rt.remove(s.name)
    assert not scratch.exists()
    assert scratch_root.exists(), "only the job's own folder goes"


def test_a_spec_may_not_set_platform_owned_env(make_spec: Callable[..., LaunchSpec]) -> None:
    for name in ("HOME", "TMPDIR", "TRAINYARD_SCRATCH_DIR", "NVIDIA_VISIBLE_DEVICES"):
        with pytest.raises(ValueError, match=name):
            make_spec(["true"], env={name: "x"})
