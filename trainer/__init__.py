"""The reference trainer, shipped with trainyard so the process runtime finds it installed.

`train.py` is a script, never imported: the trainer image runs it as its ENTRYPOINT
(trainer/Dockerfile copies it from this folder) and the process runtime runs this very file.
`trainyard_trainer/`, the contract helper it imports, sits beside it (on sys.path as the
script's folder) and is also a distribution of its own (trainer/pyproject.toml).
"""

from pathlib import Path

TRAIN_SCRIPT = Path(__file__).resolve().with_name("train.py")
