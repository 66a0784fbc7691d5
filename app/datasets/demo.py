"""A generated demo dataset (never downloaded): Gaussian blobs, one per class.

    python -m app.datasets.demo DEST [--samples 600] [--features 8] [--classes 3] [--seed 0]

Each class has a random centre (standard normal per feature, scaled by `CENTRE_SCALE`) and its
samples are the centre plus unit Gaussian noise, so the classes are mostly, not perfectly,
linearly separable. Labels are balanced (sample i has class i mod n_classes); the manifest
leaves `split` empty so the platform's split lists decide. Same arguments => same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

from app.datasets.manifest import (
    MANIFEST_NAME,
    SAMPLES_DIR,
    DatasetError,
    read_manifest,
    verify_sample_files,
)

CENTRE_SCALE = 1.0
CLASS_NAMES = ("cat", "dog", "bird", "fish", "frog", "horse", "deer", "ship", "truck", "plane")
INFO_NAME = "dataset.json"


def class_names(n_classes: int) -> list[str]:
    if n_classes <= len(CLASS_NAMES):
        return list(CLASS_NAMES[:n_classes])
    return [f"class_{k}" for k in range(n_classes)]


def is_complete(dataset_dir: Path) -> bool:
    """True when the folder has a readable manifest and every sample file it lists."""
    try:
        verify_sample_files(dataset_dir, read_manifest(dataset_dir))
    except DatasetError:
        return False
    return True


def _write(dest: Path, n_samples: int, n_features: int, n_classes: int, seed: int) -> None:
    rng = random.Random(seed)
    names = class_names(n_classes)
    centres = [
        [rng.gauss(0.0, 1.0) * CENTRE_SCALE for _ in range(n_features)] for _ in range(n_classes)
    ]
    width = max(5, len(str(n_samples - 1)))
    (dest / SAMPLES_DIR).mkdir(parents=True)
    rows = ["sample,label,split"]
    for i in range(n_samples):
        sample_id = f"s{i:0{width}d}"
        k = i % n_classes
        features = [c + rng.gauss(0.0, 1.0) for c in centres[k]]
        (dest / SAMPLES_DIR / f"{sample_id}.csv").write_text(
            ",".join(f"{v:.6f}" for v in features) + "\n", encoding="utf-8"
        )
        rows.append(f"{sample_id},{names[k]},")
    info = {
        "name": "demo",
        "description": "generated Gaussian-blob classification data (app.datasets.demo)",
        "n_samples": n_samples,
        "n_features": n_features,
        "n_classes": n_classes,
        "classes": names,
        "seed": seed,
    }
    (dest / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    # The manifest last: a folder with a manifest is a finished one.
    (dest / MANIFEST_NAME).write_text("\n".join(rows) + "\n", encoding="utf-8")


def generate_demo_dataset(
    dest: Path, n_samples: int = 600, n_features: int = 8, n_classes: int = 3, seed: int = 0
) -> Path:
    """Create the demo dataset at `dest` and return `dest`.

    Idempotent: a complete dataset already at `dest` is left as it is (whatever its size).
    The data is written into a temporary sibling folder and renamed into place, so concurrent
    callers and crashes never leave a half-written dataset at `dest`. An existing empty folder
    is replaced; an existing non-empty folder that is not a complete dataset is an error.
    """
    if n_classes < 2 or n_features < 1 or n_samples < n_classes:
        raise DatasetError(
            f"demo dataset needs n_classes >= 2, n_features >= 1 and n_samples >= n_classes "
            f"(got {n_samples} samples, {n_features} features, {n_classes} classes)"
        )
    dest = Path(dest)
    if is_complete(dest):
        return dest
    if dest.exists():
        if not dest.is_dir() or any(dest.iterdir()):
            raise DatasetError(f"{dest} exists but is not a complete dataset; remove it first")
        dest.rmdir()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        _write(tmp / "data", n_samples, n_features, n_classes, seed)
        os.chmod(tmp / "data", 0o755)
        try:
            os.replace(tmp / "data", dest)
        except OSError:
            # Someone else finished first (the rename target is then a non-empty folder).
            if not is_complete(dest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.datasets.demo", description="Write the generated demo dataset."
    )
    parser.add_argument("dest", type=Path, help="folder to create, e.g. $DATASET_ROOT/demo")
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        path = generate_demo_dataset(
            args.dest, args.samples, args.features, args.classes, args.seed
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
