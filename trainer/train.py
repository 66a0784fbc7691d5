#!/usr/bin/env python3
"""trainyard reference trainer: the trainer contract (trainer/README.md) on a small model.

    train.py --job-type TRAIN|EVAL --output-dir DIR [--dataset-dir DIR] [--split-dir DIR]
             --total-epoch N --val-interval K [--resume-from K] [--epoch E]
             [--checkpoint-dir DIR] [--params JSON]

Standard library only. The contract's plumbing (arguments, CSV rows, atomic checkpoints and
progress, resume, SIGTERM, EVAL files) is the helper library `trainyard_trainer` beside this
file; this file holds the data, the model and the training loop. The model is a softmax
regression (`hidden` = 0, the default) or a one-hidden-layer tanh MLP, trained with
minibatch SGD in pure Python; when `import torch` works and CUDA is available (or `backend`
is "torch") the same model runs on PyTorch.

Exit codes: 0 done, 1 unexpected error, 2 bad arguments or inputs (missing dataset, split
list or checkpoint), 3 `fail_at_epoch` reached, 128+signal (143 for SIGTERM) when stopped.
"""

from __future__ import annotations

import csv
import importlib
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import trainyard_trainer  # noqa: F401 - beside this file, on sys.path when run as a script
except ImportError:  # loaded by path (a test): the helper is still beside it
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from trainyard_trainer import (
    EXIT_OK,
    Contract,
    ContractError,
    Stopped,
    make_summary,
    run_guarded,
    should_stop,
    stop_exit_code,
    wait,
)

CHECKPOINT_FORMAT = "trainyard-reference-trainer/1"
SPLITS = ("train", "val", "test")
TRAIN_HEADER = ["epoch", "loss", "accuracy", "lr"]
VAL_HEADER = ["epoch", "val_loss", "val_accuracy"]
EXIT_FAIL_AT_EPOCH = 3

DEFAULT_PARAMS: dict[str, Any] = {
    "lr": 0.1,
    "seed": 0,
    "batch_size": 32,
    "hidden": 0,
    "lr_decay": 1.0,
    "epoch_seconds": 0.0,
    "eval_seconds": 0.0,
    "fail_at_epoch": None,
    "memory_hog_mb": 0,
    "backend": "auto",
    "split": None,
}

Matrix = list[list[float]]
Vector = list[float]


class TrainerError(ContractError):
    """A problem with the arguments or inputs: reported on stderr, exit code 2."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 - py3.10


def log(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- arguments


def load_params(given: dict[str, Any]) -> dict[str, Any]:
    """The reference trainer's defaults and checks on top of the `--params` object."""
    params = dict(DEFAULT_PARAMS)
    params.update({k: v for k, v in given.items() if v is not None})  # null = default

    def number(name: str, minimum: float, integer: bool = False, strict: bool = False) -> None:
        value = params[name]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer:
            ok = float(value).is_integer()
        if not ok or not math.isfinite(value) or value < minimum or (strict and value == minimum):
            kind = "an integer" if integer else "a number"
            bound = ">" if strict else ">="
            raise TrainerError(f"params.{name} must be {kind} {bound} {minimum}, got {value!r}")
        params[name] = int(value) if integer else float(value)

    number("lr", 0.0, strict=True)
    number("seed", -(2**63), integer=True)
    number("batch_size", 1, integer=True)
    number("hidden", 0, integer=True)
    number("lr_decay", 0.0, strict=True)
    number("epoch_seconds", 0.0)
    number("eval_seconds", 0.0)
    number("memory_hog_mb", 0, integer=True)
    if params["fail_at_epoch"] is not None:
        number("fail_at_epoch", 1, integer=True)
    if params["backend"] not in ("auto", "python", "torch", "cuda"):
        raise TrainerError(
            f"params.backend must be auto, python, torch or cuda, got {params['backend']!r}"
        )
    return params


def fmt(value: float) -> str:
    return f"{value:.6f}"


# ----------------------------------------------------------------------------- dataset


def read_manifest(dataset_dir: Path) -> list[tuple[str, str | None, str | None]]:
    """(sample, label, split) rows of manifest.csv; same rules as app.datasets.manifest."""
    manifest = dataset_dir / "manifest.csv"
    if not dataset_dir.is_dir():
        raise TrainerError(f"dataset folder not found: {dataset_dir}")
    if not manifest.is_file():
        raise TrainerError(f"{manifest}: manifest not found")
    rows: list[tuple[str, str | None, str | None]] = []
    seen: set[str] = set()
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        if "sample" not in header:
            raise TrainerError(f"{manifest} line 1: missing column 'sample'")
        col = {name: header.index(name) for name in ("sample", "label", "split") if name in header}
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            row = row + [""] * (len(header) - len(row))

            def get(name: str, row: list[str] = row) -> str:
                return row[col[name]].strip() if name in col else ""

            sample = get("sample")
            where = f"{manifest} line {reader.line_num}"
            if not sample or "/" in sample or "\\" in sample or sample in (".", ".."):
                raise TrainerError(f"{where}: bad sample id {sample!r}")
            if sample in seen:
                raise TrainerError(f"{where}: duplicate sample id {sample!r}")
            seen.add(sample)
            split = get("split").lower() or None
            if split is not None and split not in SPLITS:
                raise TrainerError(f"{where}: bad split {split!r}")
            rows.append((sample, get("label") or None, split))
    if not rows:
        raise TrainerError(f"{manifest}: no samples")
    return rows


def make_splits(
    rows: list[tuple[str, str | None, str | None]],
    seed: int,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
) -> dict[str, list[str]]:
    """Mirror of app.datasets.splits.make_splits (tests check they agree)."""
    result: dict[str, list[str]] = {name: [] for name in SPLITS}
    groups: dict[str, list[str]] = {}
    for sample, label, split in sorted(rows, key=lambda r: r[0]):
        if split is not None:
            result[split].append(sample)
        else:
            groups.setdefault(label or "", []).append(sample)
    rng = random.Random(seed)
    counts = [0, 0, 0]
    assigned = 0
    for key in sorted(groups):
        ids = groups[key]
        rng.shuffle(ids)
        for sample in ids:
            assigned += 1
            lag = [ratios[i] * assigned - counts[i] for i in range(3)]
            best = max(range(3), key=lambda i: (lag[i], -i))
            counts[best] += 1
            result[SPLITS[best]].append(sample)
    for ids in result.values():
        ids.sort()
    return result


def read_split_dir(split_dir: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in SPLITS:
        path = split_dir / f"{name}.txt"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError as exc:
            raise TrainerError(f"{path}: split list not found") from exc
        out[name] = [line.strip() for line in lines if line.strip()]
    return out


Labels = dict[str, str | None]


def resolve_splits(
    dataset_dir: Path, split_dir: Path | None, params: dict[str, Any]
) -> tuple[dict[str, list[str]], Labels, str]:
    rows = read_manifest(dataset_dir)
    labels = {sample: label for sample, label, _ in rows}
    if split_dir is not None:
        splits, source = read_split_dir(split_dir), f"split lists in {split_dir}"
        for name, ids in splits.items():
            unknown = [s for s in ids if s not in labels]
            if unknown:
                raise TrainerError(
                    f"{split_dir}/{name}.txt names {len(unknown)} sample(s) not in "
                    f"the manifest, e.g. {unknown[0]!r}"
                )
    else:
        ratios = params.get("split") or {}
        try:
            r = tuple(float(ratios.get(k, d)) for k, d in zip(SPLITS, (0.8, 0.1, 0.1), strict=True))
        except (AttributeError, TypeError, ValueError) as exc:
            raise TrainerError(f"params.split is not a {{train,val,test}} object: {exc}") from exc
        if min(r) < 0 or abs(sum(r) - 1.0) > 1e-6:
            raise TrainerError(f"params.split must be >= 0 and sum to 1, got {r}")
        splits = make_splits(rows, params["seed"], r)
        explicit = sum(1 for _, _, split in rows if split is not None)
        source = (
            f"manifest split column ({explicit} of {len(rows)} samples)"
            if explicit
            else f"deterministic split {r} with seed {params['seed']}"
        )
    return splits, labels, source


def read_features(dataset_dir: Path, sample: str) -> Vector:
    path = dataset_dir / "samples" / f"{sample}.csv"
    try:
        text = path.read_text(encoding="utf-8").strip()
        values = [float(v) for v in text.split(",")]
    except FileNotFoundError as exc:
        raise TrainerError(f"{path}: sample file not found") from exc
    except ValueError as exc:
        raise TrainerError(f"{path} line 1: not a line of comma-separated numbers") from exc
    if not all(math.isfinite(v) for v in values):
        raise TrainerError(f"{path} line 1: non-finite value")
    return values


def load_xy(
    dataset_dir: Path,
    ids: list[str],
    labels: Labels,
    class_index: dict[str, int],
    n_features: int | None,
    split: str,
) -> tuple[Matrix, list[int], list[str]]:
    xs: Matrix = []
    ys: list[int] = []
    kept: list[str] = []
    skipped = 0
    for sample in ids:
        label = labels.get(sample)
        if label is None:
            skipped += 1
            continue
        if label not in class_index:
            raise TrainerError(
                f"{split} sample {sample!r} has label {label!r}, "
                f"unknown to the model (classes {sorted(class_index)})"
            )
        x = read_features(dataset_dir, sample)
        if n_features is None:
            n_features = len(x)
        if len(x) != n_features:
            raise TrainerError(f"sample {sample!r} has {len(x)} features, expected {n_features}")
        xs.append(x)
        ys.append(class_index[label])
        kept.append(sample)
    if skipped:
        warn(f"warning: {skipped} unlabeled sample(s) in the {split} split were skipped")
    return xs, ys, kept


def normalizer(xs: Matrix) -> tuple[Vector, Vector]:
    n, f = len(xs), len(xs[0])
    mean = [sum(x[j] for x in xs) / n for j in range(f)]
    std = [math.sqrt(sum((x[j] - mean[j]) ** 2 for x in xs) / n) or 1.0 for j in range(f)]
    return mean, std


def normalize(xs: Matrix, mean: Vector, std: Vector) -> Matrix:
    return [[(v - m) / s for v, m, s in zip(x, mean, std, strict=True)] for x in xs]


# ----------------------------------------------------------------------------- models


def init_layers(sizes: list[int], rng: random.Random) -> list[dict[str, Any]]:
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        scale = 1.0 / math.sqrt(fan_in)
        layers.append(
            {
                "W": [[rng.gauss(0.0, scale) for _ in range(fan_in)] for _ in range(fan_out)],
                "b": [0.0] * fan_out,
            }
        )
    return layers


def softmax(z: Vector) -> Vector:
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


class PythonModel:
    """Softmax regression / tanh MLP on lists of floats; weights W[out][in], b[out]."""

    name = "python"
    device = "cpu"

    def __init__(self, layers: list[dict[str, Any]]) -> None:
        self.layers = [
            {"W": [list(r) for r in layer["W"]], "b": list(layer["b"])} for layer in layers
        ]

    def state(self) -> list[dict[str, Any]]:
        return [
            {"W": [list(r) for r in layer["W"]], "b": list(layer["b"])} for layer in self.layers
        ]

    def load(self, layers: list[dict[str, Any]]) -> None:
        self.layers = [
            {"W": [list(r) for r in layer["W"]], "b": list(layer["b"])} for layer in layers
        ]

    def _forward(self, x: Vector) -> tuple[Vector, list[Vector]]:
        acts = [x]
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            z = [
                sum(w * v for w, v in zip(row, h, strict=True)) + b
                for row, b in zip(layer["W"], layer["b"], strict=True)
            ]
            h = z if i == last else [math.tanh(v) for v in z]
            if i != last:
                acts.append(h)
        return softmax(h), acts

    def train_epoch(
        self, xs: Matrix, ys: list[int], order: list[int], batch_size: int, lr: float
    ) -> tuple[float, float]:
        total_loss, correct = 0.0, 0
        for start in range(0, len(order), batch_size):
            if should_stop():
                raise Stopped
            batch = order[start : start + batch_size]
            grads: list[dict[str, Any]] = [
                {"W": [[0.0] * len(r) for r in layer["W"]], "b": [0.0] * len(layer["b"])}
                for layer in self.layers
            ]
            for idx in batch:
                probs, acts = self._forward(xs[idx])
                y = ys[idx]
                total_loss -= math.log(max(probs[y], 1e-12))
                correct += int(max(range(len(probs)), key=probs.__getitem__) == y)
                delta = list(probs)
                delta[y] -= 1.0
                for li in range(len(self.layers) - 1, -1, -1):
                    a = acts[li]
                    g = grads[li]
                    for o, d in enumerate(delta):
                        if d:
                            row = g["W"][o]
                            for j, v in enumerate(a):
                                row[j] += d * v
                        g["b"][o] += d
                    if li:
                        w = self.layers[li]["W"]
                        delta = [
                            (1.0 - a[j] * a[j]) * sum(delta[o] * w[o][j] for o in range(len(delta)))
                            for j in range(len(a))
                        ]
            step = lr / len(batch)
            for layer, g in zip(self.layers, grads, strict=True):
                for row, grow in zip(layer["W"], g["W"], strict=True):
                    for j, gv in enumerate(grow):
                        row[j] -= step * gv
                layer["b"] = [b - step * gb for b, gb in zip(layer["b"], g["b"], strict=True)]
        return total_loss / len(order), correct / len(order)

    def predict(self, xs: Matrix) -> Matrix:
        return [self._forward(x)[0] for x in xs]


class TorchModel:
    """The same model on PyTorch (float32), used on a GPU; weights round-trip as lists."""

    name = "torch"

    def __init__(self, torch: Any, device: str, layers: list[dict[str, Any]]) -> None:
        self.torch, self.device = torch, device
        self.params = []
        for layer in layers:
            w = torch.tensor(layer["W"], dtype=torch.float32, device=device, requires_grad=True)
            b = torch.tensor(layer["b"], dtype=torch.float32, device=device, requires_grad=True)
            self.params.append((w, b))
        self._cache: dict[int, tuple[Any, Any]] = {}

    def state(self) -> list[dict[str, Any]]:
        return [
            {"W": w.detach().cpu().double().tolist(), "b": b.detach().cpu().double().tolist()}
            for w, b in self.params
        ]

    def load(self, layers: list[dict[str, Any]]) -> None:
        with self.torch.no_grad():
            for (w, b), layer in zip(self.params, layers, strict=True):
                w.copy_(self.torch.tensor(layer["W"], dtype=w.dtype, device=self.device))
                b.copy_(self.torch.tensor(layer["b"], dtype=b.dtype, device=self.device))

    def _tensors(self, xs: Matrix, ys: list[int]) -> tuple[Any, Any]:
        key = id(xs)
        if key not in self._cache:
            t = self.torch
            self._cache[key] = (
                t.tensor(xs, dtype=t.float32, device=self.device),
                t.tensor(ys, dtype=t.long, device=self.device),
            )
        return self._cache[key]

    def _forward(self, x: Any) -> Any:
        last = len(self.params) - 1
        for i, (w, b) in enumerate(self.params):
            x = x @ w.T + b
            if i != last:
                x = self.torch.tanh(x)
        return x

    def train_epoch(
        self, xs: Matrix, ys: list[int], order: list[int], batch_size: int, lr: float
    ) -> tuple[float, float]:
        t = self.torch
        x_all, y_all = self._tensors(xs, ys)
        total_loss, correct = 0.0, 0
        for start in range(0, len(order), batch_size):
            if should_stop():
                raise Stopped
            idx = t.tensor(order[start : start + batch_size], dtype=t.long, device=self.device)
            xb, yb = x_all[idx], y_all[idx]
            logits = self._forward(xb)
            loss = t.nn.functional.cross_entropy(logits, yb)
            for w, b in self.params:
                w.grad = b.grad = None
            loss.backward()
            with t.no_grad():
                for w, b in self.params:
                    w -= lr * w.grad
                    b -= lr * b.grad
            total_loss += float(loss.item()) * len(idx)
            correct += int((logits.argmax(dim=1) == yb).sum().item())
        return total_loss / len(order), correct / len(order)

    def predict(self, xs: Matrix) -> Matrix:
        t = self.torch
        with t.no_grad():
            x = t.tensor(xs, dtype=t.float32, device=self.device)
            probs: Matrix = t.softmax(self._forward(x), dim=1).double().cpu().tolist()
            return probs


Model = PythonModel | TorchModel


def make_model(backend: str, layers: list[dict[str, Any]]) -> Model:
    if backend == "python":
        return PythonModel(layers)
    try:
        torch = importlib.import_module("torch")  # optional: used for GPUs
    except Exception as exc:  # ImportError, or a broken CUDA install
        if backend == "auto":
            return PythonModel(layers)
        raise TrainerError(
            f"params.backend={backend!r} but PyTorch cannot be imported: {exc}"
        ) from exc
    cuda = bool(torch.cuda.is_available())
    if backend == "auto" and not cuda:
        return PythonModel(layers)
    if backend == "cuda" and not cuda:
        raise TrainerError("params.backend='cuda' but torch.cuda.is_available() is false")
    return TorchModel(torch, "cuda" if cuda else "cpu", layers)


def evaluate(model: Model, xs: Matrix, ys: list[int]) -> tuple[float, float, Matrix]:
    probs = model.predict(xs)
    loss = -sum(math.log(max(p[y], 1e-12)) for p, y in zip(probs, ys, strict=True)) / len(ys)
    correct = sum(
        int(max(range(len(p)), key=p.__getitem__) == y) for p, y in zip(probs, ys, strict=True)
    )
    return loss, correct / len(ys), probs


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    ctx: Contract,
    epoch: int,
    model: Model,
    rng: random.Random,
    meta: dict[str, Any],
    metrics: dict[str, float],
) -> Path:
    version, internal, gauss_next = rng.getstate()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        **meta,
        "metrics": metrics,
        "layers": model.state(),
        "rng_state": [version, list(internal), gauss_next],
        "saved_at": now_iso(),
    }
    return ctx.save_checkpoint(epoch, json.dumps(payload, separators=(",", ":")))


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainerError(f"checkpoint not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainerError(f"checkpoint {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise TrainerError(f"checkpoint {path} is not a {CHECKPOINT_FORMAT} checkpoint")
    return data


def restore_rng(state: list[Any]) -> random.Random:
    rng = random.Random()
    version, internal, gauss_next = state
    rng.setstate((version, tuple(internal), gauss_next))
    return rng


# ----------------------------------------------------------------------------- jobs


def hog_memory(megabytes: int) -> list[bytearray]:
    log(f"memory_hog_mb: allocating {megabytes} MB")
    chunks = []
    for _ in range(megabytes // 64):
        chunks.append(bytearray(b"\x01") * (64 << 20))
    if megabytes % 64:
        chunks.append(bytearray(b"\x01") * ((megabytes % 64) << 20))
    log(f"memory_hog_mb: holding {megabytes} MB")
    return chunks


def needs_dataset(ctx: Contract) -> Path:
    """This trainer learns from a platform dataset: a model created without one (`"dataset":
    null`, for images that bring their own data) gets a clear exit 2."""
    if ctx.dataset_dir is None:
        raise TrainerError(
            "no --dataset-dir: the reference trainer needs a dataset; create the model with "
            "one (or without the `dataset` field for the demo dataset)"
        )
    return ctx.dataset_dir


def train(ctx: Contract, params: dict[str, Any]) -> int:
    ckpt_dir = ctx.checkpoint_dir
    total, interval = ctx.total_epoch, ctx.val_interval
    assert total is not None and interval is not None  # parse_args: TRAIN has both
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(exist_ok=True)
    hog = hog_memory(params["memory_hog_mb"]) if params["memory_hog_mb"] else None

    dataset_dir = needs_dataset(ctx)
    splits, labels, source = resolve_splits(dataset_dir, ctx.split_dir, params)
    resume = ctx.resume_from
    ckpt = load_checkpoint(ctx.checkpoint_file(resume)) if resume else None
    if ckpt is not None and ckpt.get("epoch") != resume:
        raise TrainerError(f"checkpoint for epoch {resume} says epoch {ckpt.get('epoch')}")

    if ckpt is not None:
        classes: list[str] = list(ckpt["classes"])
    else:
        classes = sorted({lab for s in splits["train"] if (lab := labels.get(s)) is not None})
        if len(classes) < 2:
            raise TrainerError(f"the train split has {len(classes)} label(s); need at least 2")
    class_index = {c: i for i, c in enumerate(classes)}
    n_features = ckpt["n_features"] if ckpt is not None else None
    x_train, y_train, _ = load_xy(
        dataset_dir, splits["train"], labels, class_index, n_features, "train"
    )
    if not x_train:
        raise TrainerError("the train split has no labeled samples")
    n_features = len(x_train[0])
    x_val, y_val, _ = load_xy(
        dataset_dir, splits["val"], labels, class_index, n_features, "val"
    )
    if not x_val:
        raise TrainerError("the val split has no labeled samples (val.csv needs them)")

    if ckpt is not None:
        mean, std = ckpt["normalization"]["mean"], ckpt["normalization"]["std"]
        rng = restore_rng(ckpt["rng_state"])
        layers = ckpt["layers"]
    else:
        mean, std = normalizer(x_train)
        rng = random.Random(params["seed"])
        layers = init_layers(
            [n_features, *([params["hidden"]] if params["hidden"] else []), len(classes)], rng
        )
    x_train, x_val = normalize(x_train, mean, std), normalize(x_val, mean, std)
    model = make_model(params["backend"], layers)
    meta = {
        "total_epoch": total,
        "val_interval": interval,
        "classes": classes,
        "n_features": n_features,
        "hidden": params["hidden"],
        "normalization": {"mean": mean, "std": std},
        "backend": model.name,
        "params": {k: v for k, v in params.items() if k in DEFAULT_PARAMS},
    }

    # Resume: rows after `resume` and later checkpoints go; fresh: header-only CSVs.
    start = ctx.start_epoch(TRAIN_HEADER, VAL_HEADER)
    if resume:
        kept_t, kept_v = ctx.kept_rows
        log(f"resuming from epoch {resume}: kept {kept_t} train and {kept_v} val rows")
    done = resume or 0

    def checkpoint(epoch: int, metrics: dict[str, float]) -> None:
        save_checkpoint(ctx, epoch, model, rng, meta, metrics)

    log(
        f"trainer: TRAIN epochs {start}..{total} (val every {interval}) backend={model.name} "
        f"device={model.device} classes={len(classes)} features={n_features} "
        f"train={len(x_train)} val={len(x_val)}; splits from {source}"
    )
    ctx.write_progress(done)
    last_metrics: dict[str, float] = {}
    code = EXIT_OK
    for epoch in range(start, total + 1):
        if should_stop():
            break
        if params["fail_at_epoch"] == epoch:
            warn(
                f"error: fail_at_epoch={epoch} reached: failing on purpose "
                f"(test knob of the reference trainer)"
            )
            code = EXIT_FAIL_AT_EPOCH
            break
        t0 = time.monotonic()
        lr = params["lr"] * params["lr_decay"] ** (epoch - 1)
        order = list(range(len(x_train)))
        state_before = (model.state(), rng.getstate())
        rng.shuffle(order)
        try:
            loss, acc = model.train_epoch(x_train, y_train, order, params["batch_size"], lr)
        except Stopped:
            # Drop the unfinished epoch: back to the weights of the last finished one.
            model.load(state_before[0])
            rng.setstate(state_before[1])
            break
        ctx.log_train(epoch, loss=fmt(loss), accuracy=fmt(acc), lr=f"{lr:g}")
        line = f"epoch {epoch}/{total} loss={loss:.4f} accuracy={acc:.4f} lr={lr:g}"
        last_metrics = {"loss": loss, "accuracy": acc}
        if ctx.is_val_epoch(epoch):
            val_loss, val_acc, _ = evaluate(model, x_val, y_val)
            ctx.log_val(epoch, val_loss=fmt(val_loss), val_accuracy=fmt(val_acc))
            line += f" val_loss={val_loss:.4f} val_accuracy={val_acc:.4f}"
            last_metrics.update(val_loss=val_loss, val_accuracy=val_acc)
        done = epoch
        if ctx.wants_checkpoint(epoch):
            checkpoint(epoch, last_metrics)
        ctx.write_progress(done)
        # epoch_seconds: pace the epoch; a stop request cuts the wait short (the epoch's
        # work is already done and recorded, so it counts as finished).
        wait(params["epoch_seconds"] - (time.monotonic() - t0))
        log(f"{line} ({time.monotonic() - t0:.2f}s)")

    last_ckpt = ctx.last_checkpoint or 0
    if done > last_ckpt:  # stopped or failing between checkpoints: keep the last epoch reached
        checkpoint(done, last_metrics)
        ctx.write_progress(done)
        last_ckpt = done
    del hog
    if code == EXIT_OK and ctx.finish() != EXIT_OK:
        log(
            f"trainer: stopped by signal {stop_exit_code() - 128} after epoch {done}/{total}; "
            f"checkpoint epoch {last_ckpt or 'none'}"
        )
        return stop_exit_code()
    if code == EXIT_OK:
        log(f"trainer: finished {total} epochs; last checkpoint epoch {last_ckpt}")
    return code


def run_eval(ctx: Contract, params: dict[str, Any]) -> int:
    epoch = ctx.epoch
    assert epoch is not None  # parse_args: EVAL has --epoch
    path = ctx.checkpoint_file(epoch)
    if not path.is_file():
        raise TrainerError(
            f"no checkpoint for epoch {epoch}: {path} does not exist "
            f"(checkpoints exist for validated epochs and the last epoch reached)"
        )
    ckpt = load_checkpoint(path)
    hog = hog_memory(params["memory_hog_mb"]) if params["memory_hog_mb"] else None
    t0 = time.monotonic()
    classes: list[str] = list(ckpt["classes"])
    class_index = {c: i for i, c in enumerate(classes)}
    dataset_dir = needs_dataset(ctx)
    splits, labels, source = resolve_splits(dataset_dir, ctx.split_dir, params)
    xs, ys, ids = load_xy(
        dataset_dir, splits["test"], labels, class_index, ckpt["n_features"], "test"
    )
    if not xs:
        raise TrainerError("the test split has no labeled samples")
    norm = ckpt["normalization"]
    model = make_model(params["backend"], ckpt["layers"])
    log(
        f"trainer: EVAL epoch {epoch} backend={model.name} device={model.device} "
        f"test={len(xs)}; splits from {source}"
    )
    loss, acc, probs = evaluate(model, normalize(xs, norm["mean"], norm["std"]), ys)
    preds = [max(range(len(p)), key=p.__getitem__) for p in probs]

    confusion = [[0] * len(classes) for _ in classes]
    for y, p in zip(ys, preds, strict=True):
        confusion[y][p] += 1
    summary = make_summary(
        epoch,
        classes,
        confusion,
        test_loss=loss,
        test_accuracy=acc,
        checkpoint=str(path),
        backend=model.name,
    )

    if wait(params["eval_seconds"] - (time.monotonic() - t0)):
        raise Stopped

    per_class = summary["per_class"]
    test_row = {
        "test_loss": fmt(loss),
        "test_accuracy": fmt(acc),
        **{
            f"acc_{c}": "" if per_class[c]["accuracy"] is None else fmt(per_class[c]["accuracy"])
            for c in classes
        },
    }
    predictions = [
        {
            "sample": sample,
            "label": classes[y],
            "predicted": classes[p],
            "correct": int(y == p),
            **{f"prob_{c}": fmt(v) for c, v in zip(classes, pr, strict=True)},
        }
        for sample, y, p, pr in zip(ids, ys, preds, probs, strict=True)
    ]
    zip_path = ctx.write_eval(test_row, summary, predictions)
    del hog
    log(
        f"test epoch {epoch} test_loss={loss:.4f} test_accuracy={acc:.4f} "
        f"-> {ctx.test_dir}/test.csv, {zip_path}"
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    ctx = Contract.from_argv(argv, prog="train.py", description="trainyard reference trainer")
    job: Callable[[Contract, dict[str, Any]], int] = (
        train if ctx.job_type == "TRAIN" else run_eval
    )
    return run_guarded(lambda: job(ctx, load_params(ctx.params)))


if __name__ == "__main__":
    sys.exit(main())
