"""trainyard_trainer, the contract helper: unit tests on tmp folders, and what the platform's
own readers (workers/outputs.py, app/domain/completion.py, app/api/results.py) make of its files.

Pure: no Docker, database or broker; subprocesses only for signals and a kill mid-write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from app import jobfiles
from app.api.results import _read_summary, _read_test_csv
from app.domain.completion import output_gap
from app.domain.states import JobType
from trainer.trainyard_trainer import (
    Contract,
    ContractError,
    atomic_write,
    make_summary,
    truncate_csv,
)
from trainer.trainyard_trainer import contract as contract_module
from workers.outputs import probe, read_progress

REPO = Path(__file__).resolve().parents[2]
HELPER_DIR = REPO / "trainer"  # `import trainyard_trainer` works with this on sys.path


def train_ctx(out: Path, *extra: str, params: str = "{}") -> Contract:
    argv = ["--job-type", "TRAIN", "--output-dir", str(out), "--dataset-dir", str(out / "ds")]
    argv += ["--total-epoch", "4", "--val-interval", "2", *extra, "--params", params]
    return Contract.from_argv(argv, install_signals=False)


def eval_ctx(out: Path, epoch: int, *extra: str) -> Contract:
    argv = ["--job-type", "EVAL", "--output-dir", str(out), "--dataset-dir", "/d"]
    return Contract.from_argv([*argv, "--epoch", str(epoch), *extra], install_signals=False)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def run_script(code: str, *args: str, **kwargs) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(HELPER_DIR)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# ----------------------------------------------------------------------------- arguments


def test_parses_the_argv_the_platform_passes(tmp_path: Path) -> None:
    """The launcher's argv (workers/launcher.py build_spec), params as sorted JSON."""
    params = {"epoch": None, "lr": 0.5, "resume_from": 2, "total_epoch": 4, "val_interval": 2}
    ctx = train_ctx(
        tmp_path,
        "--split-dir",
        str(tmp_path / "splits"),
        "--resume-from",
        "2",
        params=json.dumps(params, sort_keys=True),
    )
    assert (ctx.job_type, ctx.total_epoch, ctx.val_interval, ctx.resume_from) == (
        "TRAIN",
        4,
        2,
        2,
    )
    assert ctx.output_dir == tmp_path and ctx.dataset_dir == tmp_path / "ds"
    assert ctx.split_dir == tmp_path / "splits"
    assert ctx.params == params
    assert ctx.checkpoint_dir == tmp_path / "checkpoints"
    assert ctx.last_checkpoint == 2 and ctx.epochs_done == 2

    ev = eval_ctx(tmp_path / "e", 3, "--checkpoint-dir", str(tmp_path / "ck"), "--job-type", "eval")
    assert (ev.job_type, ev.epoch, ev.params) == ("EVAL", 3, {})
    assert ev.checkpoint_file(3) == tmp_path / "ck" / "epoch_0003.ckpt"

    params_file = tmp_path / "p.json"
    params_file.write_text('{"seed": 7}', encoding="utf-8")
    assert train_ctx(tmp_path, params=f"@{params_file}").params == {"seed": 7}


def test_dataset_dir_is_optional(tmp_path: Path) -> None:
    """A model created with `"dataset": null` gets neither --dataset-dir nor --split-dir."""
    argv = ["--job-type", "TRAIN", "--output-dir", str(tmp_path), "--total-epoch", "2"]
    ctx = Contract.from_argv([*argv, "--val-interval", "1"], install_signals=False)
    assert ctx.dataset_dir is None and ctx.split_dir is None
    assert ctx.total_epoch == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--job-type", "TRAIN", "--val-interval", "2"], "TRAIN needs --total-epoch"),
        (["--job-type", "EVAL"], "EVAL needs --epoch"),
        (["--job-type", "TRAIN", "--total-epoch", "2", "--val-interval", "1", "--resume-from", "3"],
         "--resume-from must be between 1 and --total-epoch (2)"),
        (["--job-type", "TRAIN", "--total-epoch", "2", "--val-interval", "1", "--params", "[1]"],
         "error: --params must be a JSON object"),
        (["--job-type", "TRAIN", "--total-epoch", "2", "--val-interval", "1", "--params", "{"],
         "error: --params is not valid JSON"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_naming_the_problem(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        Contract.from_argv(
            [*argv, "--output-dir", str(tmp_path), "--dataset-dir", str(tmp_path)],
            install_signals=False,
        )
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------- CSV rows


def test_rows_are_appended_fsynced_with_one_header_and_stable_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(contract_module.os, "fsync", spy)
    ctx = train_ctx(tmp_path)
    assert ctx.start_epoch() == 1
    assert not ctx.train_csv.exists()  # no columns given: the first row brings the header

    ctx.log_train(1, loss=0.5, accuracy=0.25, lr="0.1")
    assert lines(ctx.train_csv) == ["epoch,loss,accuracy,lr", "1,0.5,0.25,0.1"]
    assert synced == [str(ctx.train_csv)]  # the row is on disk before log_train returns

    ctx.log_train(2, lr="0.1", accuracy=0.5, loss=None)  # another order, a missing value
    ctx.log_val(2, val_loss=0.4, val_accuracy=True)
    assert lines(ctx.train_csv) == ["epoch,loss,accuracy,lr", "1,0.5,0.25,0.1", "2,,0.5,0.1"]
    assert lines(ctx.val_csv) == ["epoch,val_loss,val_accuracy", "2,0.4,1"]
    assert synced == [str(ctx.train_csv)] * 2 + [str(ctx.val_csv)]

    with pytest.raises(ValueError, match="not \\['gpu_mem'\\]"):
        ctx.log_train(3, loss=0.1, gpu_mem=3)
    assert len(lines(ctx.train_csv)) == 3  # nothing half-written


def test_a_fresh_run_starts_anew_and_writes_given_headers(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for e in (1, 2):
        (ckpts / f"epoch_{e:04d}.ckpt").write_bytes(b"old")
    (ckpts / "notes.txt").write_text("mine")
    (tmp_path / "train.csv").write_text("epoch,loss\n1,0.1\n")
    ctx = train_ctx(tmp_path)
    assert ctx.start_epoch(["epoch", "loss"], ["epoch", "val_loss"]) == 1
    assert sorted(p.name for p in ckpts.iterdir()) == ["notes.txt"]
    assert lines(ctx.train_csv) == ["epoch,loss"]
    assert lines(ctx.val_csv) == ["epoch,val_loss"]
    ctx.log_train(1, loss=0.3)
    assert lines(ctx.train_csv) == ["epoch,loss", "1,0.3"]


def test_resume_keeps_rows_up_to_k_once_and_drops_later_checkpoints(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for e in range(1, 6):
        (ckpts / f"epoch_{e:04d}.ckpt").write_bytes(b"x")
    train_rows = "".join(f"{e},0.{e}\n" for e in range(1, 6))
    (tmp_path / "train.csv").write_text("epoch,loss\n" + train_rows + "6,0.")  # torn last line
    (tmp_path / "val.csv").write_text("epoch,val_loss\n2,0.2\n4,0.4\n")
    ctx = train_ctx(tmp_path, "--resume-from", "2")

    assert ctx.start_epoch() == 3
    assert lines(ctx.train_csv) == ["epoch,loss", "1,0.1", "2,0.2"]
    assert lines(ctx.val_csv) == ["epoch,val_loss", "2,0.2"]
    assert ctx.kept_rows == (2, 1)
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch_0001.ckpt", "epoch_0002.ckpt"]

    ctx.log_train(3, loss=0.33)
    assert ctx.start_epoch() == 3  # done once: a second call truncates nothing
    assert lines(ctx.train_csv)[-1] == "3,0.33"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_truncate_csv_rules(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    assert truncate_csv(path, 3) == 0 and not path.exists()  # no file, no header: nothing
    assert truncate_csv(path, 3, ["epoch", "a"]) == 0
    assert lines(path) == ["epoch,a"]
    path.write_text("epoch,a\n1,x\n2\nnot,a number\n3,y,extra\n4,z\n")
    assert truncate_csv(path, 3) == 1
    assert lines(path) == ["epoch,a", "1,x"]


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoints_from_bytes_or_a_callback_and_progress(tmp_path: Path) -> None:
    ctx = train_ctx(tmp_path)
    ctx.start_epoch()
    p1 = ctx.save_checkpoint(1, b"\x00weights")
    p2 = ctx.save_checkpoint(2, lambda fh: fh.write(b"torch.save writes here"))
    assert (p1.name, p2.name) == ("epoch_0001.ckpt", "epoch_0002.ckpt")
    assert ctx.load_checkpoint(1) == b"\x00weights"
    assert ctx.load_checkpoint(2) == b"torch.save writes here"
    assert oct(p2.stat().st_mode & 0o777) == "0o644"  # readable by the platform
    with pytest.raises(ContractError, match="checkpoint not found"):
        ctx.load_checkpoint(3)

    ctx.write_progress(3)
    assert json.loads((tmp_path / "progress.json").read_text()) == {
        "epoch": 3,
        "total_epoch": 4,
        "checkpoint_epoch": 2,
    }
    assert read_progress(jobfiles.beneath(tmp_path)) == (3, 2)  # what the worker reads
    fresh = train_ctx(tmp_path / "f")
    fresh.write_progress(0)
    assert read_progress(jobfiles.beneath(tmp_path / "f")) == (0, None)


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    atomic_write(path, '{"epoch": 1}')

    def half_then_fail(fh) -> None:
        fh.write(b'{"epo')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == '{"epoch": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.json"]


def test_a_process_killed_mid_write_leaves_readers_the_old_file(tmp_path: Path) -> None:
    """SIGKILL while a checkpoint and progress.json are half written: the names readers open
    hold the previous content; only hidden temporaries (which no reader looks for) remain."""
    ctx = train_ctx(tmp_path)
    ctx.start_epoch()
    ctx.save_checkpoint(2, b"good two")
    ctx.write_progress(2)
    proc = run_script(
        """
        import os, signal, sys
        from pathlib import Path
        from trainyard_trainer import atomic_write, checkpoint_path
        out = Path(sys.argv[1])
        def half(fh):
            fh.write(b'{"epoch": 3, "total')
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        def half_ckpt(fh):
            fh.write(b"half of epoch 2")
            fh.flush()
            atomic_write(out / "progress.json", half)
        atomic_write(checkpoint_path(out / "checkpoints", 2), half_ckpt)
        """,
        str(tmp_path),
    )
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert ctx.load_checkpoint(2) == b"good two"
    assert read_progress(jobfiles.beneath(tmp_path)) == (2, 2)
    leftovers = [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert len(leftovers) == 2 and all(p.name.endswith(".tmp") for p in leftovers)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch_*.ckpt")) == [
        "epoch_0002.ckpt"
    ]


# ----------------------------------------------------------------------------- SIGTERM


TRAINER_LOOP = """
    import sys
    import trainyard_trainer as ty

    ctx = ty.Contract.from_argv()

    def job() -> int:
        for epoch in range(ctx.start_epoch(), ctx.total_epoch + 1):
            if ctx.should_stop():
                break
            ctx.log_train(epoch, loss=1.0 / epoch)
            if ctx.is_val_epoch(epoch):
                ctx.log_val(epoch, val_loss=1.0 / epoch)
            if ctx.wants_checkpoint(epoch):
                ctx.save_checkpoint(epoch, str(epoch).encode())
            ctx.write_progress(epoch)
            print(f"epoch {epoch}", flush=True)
            ty.wait(0.2)
        if ctx.epochs_done > (ctx.last_checkpoint or 0):
            ctx.save_checkpoint(ctx.epochs_done, str(ctx.epochs_done).encode())
            ctx.write_progress(ctx.epochs_done)
        return ctx.finish()

    sys.exit(ty.run_guarded(job))
"""


def test_sigterm_sets_should_stop_and_the_run_exits_143_with_a_checkpoint(
    tmp_path: Path,
) -> None:
    argv = ["--job-type", "TRAIN", "--output-dir", str(tmp_path), "--dataset-dir", "/none"]
    proc = run_script(TRAINER_LOOP, *argv, "--total-epoch", "50", "--val-interval", "10")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "epoch 1"
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert time.monotonic() - t0 < 5  # the wait is cut short: promptly
    done = read_progress(jobfiles.beneath(tmp_path))
    assert done is not None and done[0] == done[1] and 1 <= done[0] < 50
    assert (tmp_path / "checkpoints" / f"epoch_{done[0]:04d}.ckpt").read_bytes() == str(
        done[0]
    ).encode()
    assert lines(tmp_path / "train.csv")[0] == "epoch,loss"
    assert len(lines(tmp_path / "train.csv")) == done[0] + 1


def test_a_finished_run_meets_the_platforms_completion_check(tmp_path: Path) -> None:
    argv = ["--job-type", "TRAIN", "--output-dir", str(tmp_path), "--dataset-dir", "/none"]
    proc = run_script(TRAINER_LOOP.replace("ty.wait(0.2)", "pass"), *argv)
    proc.communicate(timeout=60)  # no --total-epoch: argparse's exit 2
    assert proc.returncode == 2
    proc = run_script(
        TRAINER_LOOP.replace("ty.wait(0.2)", "pass"),
        *argv,
        "--total-epoch",
        "5",
        "--val-interval",
        "2",
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    facts = probe(JobType.TRAIN, jobfiles.beneath(tmp_path), None)
    assert facts.val_rows == 2 and output_gap(JobType.TRAIN, facts, 5, 2) is None
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "epoch_0002.ckpt",
        "epoch_0004.ckpt",
        "epoch_0005.ckpt",
    ]


def test_run_guarded_maps_failures_to_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    def bad_input() -> int:
        raise ContractError("dataset folder not found: /d")

    def crash() -> int:
        raise RuntimeError("boom")

    assert contract_module.run_guarded(bad_input) == 2
    assert "error: dataset folder not found: /d" in capsys.readouterr().err
    assert contract_module.run_guarded(crash) == 1
    assert "RuntimeError: boom" in capsys.readouterr().err
    assert contract_module.run_guarded(lambda: 0) == 0


# ----------------------------------------------------------------------------- EVAL


def test_eval_outputs_are_what_the_platform_reads(tmp_path: Path) -> None:
    ctx = eval_ctx(tmp_path, 4)
    classes = ["cat", "dog", "emu"]
    confusion = [[3, 1, 0], [0, 2, 0], [0, 0, 0]]
    summary = make_summary(4, classes, confusion, test_loss=0.7, backend="torch")
    zip_path = ctx.write_eval(
        {"test_loss": 0.7, "test_accuracy": summary["test_accuracy"]},
        summary,
        predictions=[{"sample": "s1", "label": "cat", "predicted": "dog", "correct": 0}],
    )
    assert zip_path == tmp_path / "test" / "results_epoch_4.zip"

    # workers/outputs.py + app/domain/completion.py: the EVAL job's outputs are complete
    facts = probe(JobType.EVAL, jobfiles.beneath(tmp_path), 4)
    assert output_gap(JobType.EVAL, facts, None, 1) is None

    # app/api/results.py: the results view's parsers accept both files
    test_dir = jobfiles.beneath(tmp_path) / "test"
    parsed, problem = _read_summary(test_dir)
    assert problem is None and parsed is not None
    assert parsed["classes"] == classes
    assert parsed["confusion_matrix"] == confusion
    assert parsed["per_class"] == {
        "cat": {"total": 4, "correct": 3, "accuracy": 0.75},
        "dog": {"total": 2, "correct": 2, "accuracy": 1.0},
        "emu": {"total": 0, "correct": 0, "accuracy": None},
    }
    assert parsed["n_samples"] == 6 and parsed["test_accuracy"] == pytest.approx(5 / 6)
    assert parsed["epoch"] == 4 and parsed["backend"] == "torch" and "created_at" in parsed
    columns, rows, csv_problem = _read_test_csv(test_dir)
    assert csv_problem is None
    assert columns == ["epoch", "test_loss", "test_accuracy"]
    assert rows == [{"epoch": 4, "test_loss": 0.7, "test_accuracy": pytest.approx(5 / 6)}]

    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == ["predictions.csv", "summary.json", "test.csv"]
        assert json.loads(zf.read("summary.json")) == json.loads(
            (tmp_path / "test" / "summary.json").read_text()
        )
        assert zf.read("predictions.csv") == b"sample,label,predicted,correct\ns1,cat,dog,0\n"


def test_summary_refuses_a_matrix_that_does_not_fit_and_writes_no_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3x3"):
        make_summary(1, ["a", "b", "c"], [[1, 0], [0, 1]])
    ctx = eval_ctx(tmp_path, 1)
    ctx.write_eval({"test_loss": "nan"}, make_summary(1, ["a"], [[1]], test_loss=float("nan")))
    parsed, problem = _read_summary(jobfiles.beneath(tmp_path) / "test")
    assert problem is None and parsed is not None and parsed["test_loss"] is None


# ----------------------------------------------------------------------------- packaging


def test_the_helper_is_its_own_dependency_free_distribution(tmp_path: Path) -> None:
    """`pip wheel ./trainer` makes a trainyard-trainer wheel with no requirements that works
    outside the repository (built from a copy, so the checkout gets no build folders)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "pyproject.toml").write_bytes((HELPER_DIR / "pyproject.toml").read_bytes())
    (src / "trainyard_trainer").mkdir()
    for module in (HELPER_DIR / "trainyard_trainer").glob("*.py"):
        (src / "trainyard_trainer" / module.name).write_bytes(module.read_bytes())
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run(  # setuptools comes from the package index, as for any image
        [*pip, "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), src],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("trainyard_trainer-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = next(zf.read(n).decode() for n in names if n.endswith("METADATA"))
    assert {"trainyard_trainer/__init__.py", "trainyard_trainer/contract.py"} <= set(names)
    assert "Requires-Dist" not in metadata

    target = tmp_path / "site"
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    where = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
         "import trainyard_trainer as t; print(t.__file__, t.Contract.__name__)", str(target)],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(target / "trainyard_trainer" / "__init__.py"), "Contract"]
