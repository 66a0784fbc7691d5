"""The trainer contract of trainer/README.md: arguments, output files, resume and stop.

Everything a training image must get right besides the model itself: the argv the platform
passes, CSV rows appended and fsynced as epochs end, files that are rewritten (checkpoints,
progress.json, truncated CSVs, EVAL outputs) replaced atomically, resume truncation, SIGTERM
and the exit codes. Standard library only and Python 3.9+, so any image can carry it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import signal
import sys
import tempfile
import threading
import traceback
import zipfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Union

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
JOB_TYPES = ("TRAIN", "EVAL")

# What atomic_write (and so save_checkpoint) accepts: the bytes/text, or a callable that
# writes them into a binary file object (e.g. `lambda f: torch.save(state, f)`).
Payload = Union[bytes, bytearray, memoryview, str, Callable[[IO[bytes]], object]]  # noqa: UP007 - py3.9


class ContractError(Exception):
    """Bad arguments or inputs (missing dataset, checkpoint…): stderr, exit code 2."""


class Stopped(Exception):
    """Raise it when should_stop() says so mid-work; run_guarded exits 128+signal."""


# ----------------------------------------------------------------------------- stop requests

# Process-wide, like the signals themselves: the platform stops a container with SIGTERM, and
# PID 1 in a container ignores a signal that has no handler.
_STOP = threading.Event()
_STOP_SIGNAL: list[int] = []


def _on_signal(signum: int, _frame: object) -> None:
    if not _STOP_SIGNAL:
        _STOP_SIGNAL.append(signum)
    _STOP.set()


def install_signal_handlers() -> None:
    """SIGTERM and SIGINT set the stop flag instead of killing the process (main thread only)."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def should_stop() -> bool:
    """True once SIGTERM/SIGINT arrived: finish or drop the epoch, checkpoint, exit."""
    return _STOP.is_set()


def wait(seconds: float) -> bool:
    """Sleep that a stop request cuts short; True when stopping."""
    return _STOP.wait(seconds) if seconds > 0 else _STOP.is_set()


def stop_exit_code() -> int:
    """128 + the signal that asked to stop (143 for SIGTERM, 130 for SIGINT)."""
    return 128 + (_STOP_SIGNAL[0] if _STOP_SIGNAL else int(signal.SIGTERM))


def run_guarded(job: Callable[[], int]) -> int:
    """Runs `job` and turns its failures into the contract's exit codes and stderr lines."""
    try:
        return job()
    except ContractError as exc:
        _warn(f"error: {exc}")
        return EXIT_USAGE
    except Stopped:
        code = stop_exit_code()
        print(f"trainer: stopped by signal {code - 128}", flush=True)
        return code
    except MemoryError:
        _warn("error: out of memory")
        return EXIT_ERROR
    except Exception:
        _warn("error: unexpected failure:\n" + traceback.format_exc())
        return EXIT_ERROR


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- files


def atomic_write(path: Path, data: Payload) -> None:
    """Write a file so that readers see the old or the new content, never a part.

    The content goes to a hidden temporary file in the same folder, is fsynced and renamed
    over `path`; a process killed midway leaves at most that temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from the platform's reader
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (best effort: some filesystems refuse to open a folder)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[_cell(v) for v in row] for row in rows])
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def checkpoint_path(directory: Path, epoch: int) -> Path:
    """`epoch_EEEE.ckpt`: the name the platform (and EVAL's --epoch) looks for."""
    return Path(directory) / f"epoch_{epoch:04d}.ckpt"


def _checkpoint_epoch(path: Path) -> int | None:
    digits = path.stem[len("epoch_") :]
    return int(digits) if path.stem.startswith("epoch_") and digits.isdigit() else None


def _read_header(path: Path) -> list[str] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), None)
    except FileNotFoundError:
        return None


def truncate_csv(path: Path, keep_upto: int, header: Sequence[str] | None = None) -> int:
    """Keep the header and rows with epoch <= keep_upto (atomically); returns rows kept.

    `header` replaces the file's own (and is written when the file is missing). Rows whose
    epoch is not a number or whose length differs from the header's — a torn last line of a
    killed run — are dropped.
    """
    path = Path(path)
    columns = list(header) if header is not None else _read_header(path)
    if columns is None:
        return 0
    rows: list[list[str]] = [columns]
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                try:
                    if row and int(row[0]) <= keep_upto and len(row) == len(columns):
                        rows.append(row)
                except ValueError:
                    continue
    atomic_write(path, csv_text(rows))
    return len(rows) - 1


# ----------------------------------------------------------------------------- arguments


def read_params(raw: str) -> dict[str, Any]:
    """`--params`: a JSON object, or `@FILE` holding one."""
    text = raw
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ContractError(f"--params: cannot read {raw[1:]}: {exc}") from exc
    try:
        given = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ContractError(f"--params is not valid JSON: {exc}") from exc
    if not isinstance(given, dict):
        raise ContractError("--params must be a JSON object")
    return given


def _parser(prog: str | None, description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--job-type", required=True, type=str.upper, choices=list(JOB_TYPES))
    p.add_argument("--output-dir", required=True, type=Path)
    # Absent for a model created with `"dataset": null` (an image that brings its own data).
    p.add_argument("--dataset-dir", type=Path, default=None)
    p.add_argument(
        "--split-dir",
        type=Path,
        default=None,
        help="folder with train.txt/val.txt/test.txt (else the manifest decides)",
    )
    p.add_argument("--total-epoch", type=int, default=None, help="required for TRAIN")
    p.add_argument("--val-interval", type=int, default=None, help="required for TRAIN")
    p.add_argument("--resume-from", type=int, default=None, help="TRAIN: checkpoint epoch")
    p.add_argument("--epoch", type=int, default=None, help="EVAL: checkpoint epoch to test")
    p.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="EVAL: where the checkpoints are (default OUTPUT_DIR/checkpoints)",
    )
    p.add_argument(
        "--params", default="{}", help="JSON object of hyper-parameters (or @FILE holding one)"
    )
    return p


def parse_args(
    argv: Sequence[str], prog: str | None = None, description: str | None = None
) -> argparse.Namespace:
    """The platform's argv (trainer/README.md); a wrong one exits 2 with the reason."""
    p = _parser(prog, description)
    args = p.parse_args(list(argv))
    if args.job_type == "TRAIN":
        if args.total_epoch is None or args.val_interval is None:
            p.error("TRAIN needs --total-epoch and --val-interval")
        if args.total_epoch < 1 or args.val_interval < 1:
            p.error("--total-epoch and --val-interval must be >= 1")
        if args.resume_from is not None and not 1 <= args.resume_from <= args.total_epoch:
            p.error(f"--resume-from must be between 1 and --total-epoch ({args.total_epoch})")
    elif args.epoch is None or args.epoch < 1:
        p.error("EVAL needs --epoch E (>= 1)")
    return args


# ----------------------------------------------------------------------------- EVAL summary


def make_summary(
    epoch: int,
    classes: Sequence[str],
    confusion_matrix: Sequence[Sequence[int]],
    test_loss: float | None = None,
    test_accuracy: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """summary.json as the results view reads it (schema in trainer/README.md).

    `confusion_matrix[i][j]` counts samples of class i predicted as class j; `per_class`
    and `n_samples` are derived from it, `test_accuracy` too when not given.
    """
    names = [str(c) for c in classes]
    matrix = [[int(v) for v in row] for row in confusion_matrix]
    if len(matrix) != len(names) or any(len(row) != len(names) for row in matrix):
        raise ValueError(f"confusion_matrix must be {len(names)}x{len(names)} (one per class)")
    per_class: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        total = sum(matrix[i])
        correct = matrix[i][i]
        per_class[name] = {
            "total": total,
            "correct": correct,
            "accuracy": correct / total if total else None,
        }
    n_samples = sum(map(sum, matrix))
    if test_accuracy is None and n_samples:
        test_accuracy = sum(matrix[i][i] for i in range(len(names))) / n_samples
    summary: dict[str, Any] = {
        "epoch": epoch,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "n_samples": n_samples,
        "classes": names,
        "per_class": per_class,
        "confusion_matrix": matrix,
        **extra,
    }
    summary.setdefault("created_at", _now_iso())
    return summary


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 - py3.9


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN/Infinity: the platform's parser would refuse the whole file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


# ----------------------------------------------------------------------------- the job


class Contract:
    """One job's view of the contract, made from the argv the platform passes."""

    def __init__(self, args: argparse.Namespace, params: Mapping[str, Any]) -> None:
        self.job_type: str = args.job_type
        self.output_dir: Path = args.output_dir
        self.dataset_dir: Path | None = args.dataset_dir  # None: the model has no dataset
        self.split_dir: Path | None = args.split_dir
        self.total_epoch: int | None = args.total_epoch
        self.val_interval: int | None = args.val_interval
        self.resume_from: int | None = args.resume_from
        self.epoch: int | None = args.epoch
        # --checkpoint-dir is EVAL's (the platform passes it there); TRAIN writes its own.
        given = args.checkpoint_dir if args.job_type == "EVAL" else None
        self.checkpoint_dir: Path = given or args.output_dir / "checkpoints"
        self.params: dict[str, Any] = dict(params)
        self.last_checkpoint: int | None = args.resume_from
        self.epochs_done: int = args.resume_from or 0
        self.kept_rows: tuple[int, int] = (0, 0)  # (train, val) rows kept by a resume
        self._start: int | None = None
        self._headers: dict[Path, list[str]] = {}

    @classmethod
    def from_argv(
        cls,
        argv: Sequence[str] | None = None,
        prog: str | None = None,
        description: str | None = None,
        install_signals: bool = True,
    ) -> Contract:
        """Parse argv (default sys.argv[1:]); bad arguments or --params exit 2."""
        args = parse_args(sys.argv[1:] if argv is None else argv, prog, description)
        if install_signals:
            install_signal_handlers()
        try:
            params = read_params(args.params)
        except ContractError as exc:
            _warn(f"error: {exc}")
            raise SystemExit(EXIT_USAGE) from None
        return cls(args, params)

    # -- paths

    @property
    def train_csv(self) -> Path:
        return self.output_dir / "train.csv"

    @property
    def val_csv(self) -> Path:
        return self.output_dir / "val.csv"

    @property
    def test_dir(self) -> Path:
        return self.output_dir / "test"

    def checkpoint_file(self, epoch: int) -> Path:
        return checkpoint_path(self.checkpoint_dir, epoch)

    # -- TRAIN

    def start_epoch(
        self,
        train_columns: Sequence[str] | None = None,
        val_columns: Sequence[str] | None = None,
    ) -> int:
        """The first epoch to run; prepares the output folder once.

        Fresh run: removes this folder's `epoch_*.ckpt` and starts train.csv/val.csv anew
        (header only when the columns are given, else no file until the first row).
        `--resume-from K`: keeps the CSV rows with epoch <= K (atomically, a torn line
        dropped), removes checkpoints after K and returns K+1.
        """
        if self._start is not None:
            return self._start
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        resume = self.resume_from
        for ckpt in self.checkpoint_dir.glob("epoch_*.ckpt"):
            epoch = _checkpoint_epoch(ckpt)
            if not resume or (epoch is not None and epoch > resume):
                ckpt.unlink()
        pairs = ((self.train_csv, train_columns), (self.val_csv, val_columns))
        if resume:
            kept = [truncate_csv(path, resume, columns) for path, columns in pairs]
            self.kept_rows = (kept[0], kept[1])
        else:
            for path, columns in pairs:
                if columns is not None:
                    atomic_write(path, csv_text([columns]))
                else:
                    path.unlink(missing_ok=True)
        self._headers.clear()
        self._start = (resume or 0) + 1
        return self._start

    def is_val_epoch(self, epoch: int) -> bool:
        return epoch % (self.val_interval or 1) == 0

    def wants_checkpoint(self, epoch: int) -> bool:
        """Validated epochs and the last one get a checkpoint."""
        return self.is_val_epoch(epoch) or epoch == self.total_epoch

    def log_train(self, epoch: int, **metrics: Any) -> None:
        """Append one train.csv row (`epoch`, then the metrics), flushed and fsynced."""
        self._append(self.train_csv, epoch, metrics)

    def log_val(self, epoch: int, **metrics: Any) -> None:
        """Append one val.csv row (`epoch`, `val_loss`, …), flushed and fsynced."""
        self._append(self.val_csv, epoch, metrics)

    def _append(self, path: Path, epoch: int, metrics: Mapping[str, Any]) -> None:
        header = self._headers.get(path) or _read_header(path)
        fresh = header is None
        if header is None:
            header = ["epoch", *metrics]
        unknown = [k for k in metrics if k not in header or k == "epoch"]
        if unknown:
            raise ValueError(f"{path.name} has columns {header}; not {unknown}")
        self._headers[path] = header
        row = [epoch, *(metrics.get(column) for column in header[1:])]
        text = csv_text([header, row] if fresh else [row])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def save_checkpoint(self, epoch: int, data: Payload) -> Path:
        """Write `checkpoints/epoch_EEEE.ckpt` atomically: bytes/text, or a callable that
        writes into a binary file object (`lambda f: torch.save(state, f)`)."""
        path = self.checkpoint_file(epoch)
        atomic_write(path, data)
        self.last_checkpoint = epoch
        return path

    def load_checkpoint(self, epoch: int) -> bytes:
        """The checkpoint's bytes (for torch: `torch.load(ctx.checkpoint_file(epoch))`)."""
        path = self.checkpoint_file(epoch)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ContractError(f"checkpoint not found: {path}") from None

    def write_progress(self, epoch_done: int, checkpoint_epoch: int | None = None) -> None:
        """progress.json (atomically): epochs done and the latest checkpoint (default: the
        last one save_checkpoint wrote, or --resume-from)."""
        self.epochs_done = epoch_done
        latest = self.last_checkpoint if checkpoint_epoch is None else checkpoint_epoch
        progress = {
            "epoch": epoch_done,
            "total_epoch": self.total_epoch,
            "checkpoint_epoch": latest or None,
        }
        atomic_write(self.output_dir / "progress.json", json.dumps(progress) + "\n")

    def finish(self) -> int:
        """The TRAIN exit code: 128+signal when a stop cut the run short, else 0."""
        if should_stop() and self.epochs_done < (self.total_epoch or 0):
            return stop_exit_code()
        return EXIT_OK

    def should_stop(self) -> bool:
        return should_stop()

    # -- EVAL

    def write_eval(
        self,
        test_row: Mapping[str, Any],
        summary: Mapping[str, Any],
        predictions: Sequence[Mapping[str, Any]] | None = None,
        extra_files: Mapping[str, bytes | str] | None = None,
    ) -> Path:
        """EVAL outputs under OUTPUT_DIR/test/: test.csv (header + `test_row`, `epoch`
        first), predictions.csv, summary.json (see make_summary), any extra files, and last
        `results_epoch_E.zip` holding them all. Returns the zip's path."""
        if self.epoch is None:
            raise ContractError("write_eval needs --epoch (an EVAL job)")
        row = {"epoch": self.epoch, **test_row}
        files: dict[str, bytes | str] = {"test.csv": csv_text([list(row), list(row.values())])}
        if predictions is not None:
            columns = list(predictions[0]) if predictions else []
            table = [columns, *([p.get(c) for c in columns] for p in predictions)]
            files["predictions.csv"] = csv_text(table) if columns else ""
        files["summary.json"] = json.dumps(_finite_or_none(dict(summary)), indent=2) + "\n"
        files.update(extra_files or {})
        for name, content in files.items():
            atomic_write(self.test_dir / name, content)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, content in files.items():
                zf.writestr(name, content)
        zip_path = self.test_dir / f"results_epoch_{self.epoch}.zip"
        atomic_write(zip_path, buf.getvalue())
        return zip_path
