"""A worker that dies before it commits: run by test_crash.py as its own process.

    python -m tests.metrics.crash_child URL MODEL_ID JOB_ID TRAIN_DIR HOW

HOW: `kill` (SIGKILL after the COPY, before COMMIT), `exit` (os._exit after the COPY) or
`kill-mid-copy` (SIGKILL while COPY is streaming its second block).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from sqlalchemy import text

from app.db.models import Job
from app.db.session import make_engine, make_session_factory
from app.metrics import fastcopy, ingest_train_outputs
from app.services.status_writes import lock_model_by_id


def main(url: str, model_id: int, job_id: int, folder: Path, how: str) -> None:
    if how == "kill-mid-copy":
        blocks = 0
        real = fastcopy.screen

        def screen_then_die(block: bytes) -> bytes | None:
            nonlocal blocks
            blocks += 1
            if blocks == 2:
                print("dying mid-copy", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return real(block)

        fastcopy.BLOCK = 4096
        fastcopy.screen = screen_then_die  # type: ignore[assignment]
    session = make_session_factory(make_engine(url))()
    session.begin()
    model = lock_model_by_id(session, model_id)
    job = session.get(Job, job_id)
    assert model is not None and job is not None
    with session.begin_nested():
        ingest_train_outputs(session, model, job, folder)
    copied = session.scalar(
        text("SELECT count(*) FROM tb_model_metrics_train WHERE job_id = :job"), {"job": job_id}
    )
    print(f"copied {copied}", flush=True)  # in this transaction, not yet committed
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    url, model_id, job_id, folder, how = sys.argv[1:]
    main(url, int(model_id), int(job_id), Path(folder), how)
