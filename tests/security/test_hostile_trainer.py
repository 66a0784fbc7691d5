"""Issue 10, "Must hold": a training container is an attacker, and the platform holds.

Each case runs the test-only hostile image (tests/security/hostile) on the real stack — the API
under gunicorn, a worker node with the Docker runtime, PostgreSQL, Redis — with a distinctive
API_TOKEN and the DATABASE_URL in both processes' environment, and checks, for that case:

(a) no API answer (detail, list, counts, create-tmp, status sync, metrics, results, results
    download, logs) carries the target's content: the token's secret value, DATABASE_URL's
    credentials, /etc/passwd's `root:x:0:0`, an environment's `API_TOKEN=`, or NUL bytes from
    /dev/zero; and no answer is a 5xx, hangs, or is endless;
(b) the node keeps its heartbeat (age under NODE_LOST_AFTER_S) and another job on the same node
    finishes COMPLETED;
(c) the hostile job ends in a terminal state within HOSTILE_DEADLINE_S; an end other than
    SUCCESS carries a clear code (`CODE` or `CODE: detail`);
(d) its container is removed (container_gone_dttm set, Docker knows no such container) and it
    holds no GPU lease;
(e) nothing outside the job folder changed: /etc/passwd's owner, mode and sha256, /etc's owner,
    mode and entries.

Every problem of a case is collected and reported together, so one run gives the whole picture.
A case that left the node or the API wedged gets both restarted (conftest) before the next.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.db.models import Job, Model
from tests.security.conftest import (
    DB_CREDENTIALS,
    NODE,
    NODE_LOST_AFTER_S,
    SECRET_TOKEN,
    Stack,
    docker_client,
    file_fingerprint,
)

KINDS = ("link-environ", "link-passwd", "link-zero", "fifo", "dir")
TRAIN_FILES = (
    "train.csv",
    "val.csv",
    "progress.json",
    "checkpoints",
    "checkpoint",
    "tmp-train.txt",
    "tmp-val.txt",
    "tmp-test.txt",
)
EVAL_FILES = ("test.csv", "summary.json", "predictions.csv", "results-zip")
SPECIAL_CASES = (
    "log-nul",
    "log-bad-utf8",
    "header-nul",
    "header-bad-utf8",
    "environ-tmp-lists",
    "sparse-train-csv",
    "link-dir-train-etc",
    "link-dir-tmp-etc",
)
CASES = [f"{kind}:{name}" for name in TRAIN_FILES + EVAL_FILES for kind in KINDS] + list(
    SPECIAL_CASES
)

#: From the POST that lets the attack happen to the hostile job's terminal state.
HOSTILE_DEADLINE_S = 60.0
#: Steps before the attack (the TRAIN before an EVAL attack, the run before a cancel/resume).
SETUP_DEADLINE_S = 60.0
HTTP_TIMEOUT_S = 10.0
#: An answer longer than this is "endless" (a reader of /dev/zero streaming it out).
MAX_ANSWER_BYTES = 4 * 1024 * 1024
PROBE_EVERY_S = 2.0
TERMINAL = frozenset({"SUCCESS", "FAILED", "STOPPED", "CANCELED"})
CLEAR_CODE = re.compile(r"^[A-Z][A-Z0-9_]{2,}(:|$)")
#: Byte strings no answer may contain, with what their presence means.
FORBIDDEN = {
    SECRET_TOKEN.encode(): "API_TOKEN's secret value",
    DB_CREDENTIALS.encode(): "DATABASE_URL's credentials",
    b"API_TOKEN=": "an environment block (API_TOKEN=)",
    b"root:x:0:0": "/etc/passwd content (root:x:0:0)",
}
ETC = Path("/etc")
PASSWD = ETC / "passwd"
#: Files the current code may create in /etc through a planted `tmp -> /etc`; removed after.
ETC_LITTER = re.compile(r"^(\.?(train|val|test)\.txt|\.(train|val|test)\..*\.tmp|progress\.json)$")


@dataclass
class Problems:
    items: list[str] = field(default_factory=list)
    hung: set[str] = field(default_factory=set)

    def add(self, what: str) -> None:
        if what not in self.items:
            self.items.append(what)


class Api:
    """HTTP to the served API: every answer is read (capped) and scanned."""

    def __init__(self, url: str, problems: Problems, uid: str = "") -> None:
        self.http = httpx.Client(
            base_url=url,
            timeout=HTTP_TIMEOUT_S,
            headers={"Authorization": f"Bearer {SECRET_TOKEN}"},
        )
        self.problems = problems
        self.uid = uid  # the case's model: a list answer is scanned for its entry only

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes] | None:
        label = f"{method} {path.split('?')[0]}"
        if label in self.problems.hung:
            return None
        if method == "POST":
            kwargs.setdefault("json", {})
        try:
            with self.http.stream(method, path, **kwargs) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        self.problems.add(f"(a) {label}: answer longer than {MAX_ANSWER_BYTES} B")
                        break
                status = response.status_code
        except httpx.TimeoutException:
            self.problems.hung.add(label)
            self.problems.add(f"(a) {label}: no answer within {HTTP_TIMEOUT_S:g} s (hangs)")
            return None
        except httpx.HTTPError as exc:
            self.problems.add(f"(a) {label}: {type(exc).__name__}: {exc}")
            return None
        self.scan(label, status, self._own_part(path, body), binary=path.endswith("/download"))
        return status, body

    def _own_part(self, path: str, body: bytes) -> bytes:
        """The list shows every model: earlier cases' models must not fail this case."""
        if not path.startswith("/api/models/list") or not self.uid:
            return body
        try:
            content = json.loads(body)["data"]["content"]
        except (ValueError, KeyError, TypeError):
            return body
        mine = [item for item in content if item.get("uuid") == self.uid]
        return json.dumps(mine, ensure_ascii=False).encode()

    def scan(self, label: str, status: int, body: bytes, binary: bool) -> None:
        for needle, meaning in FORBIDDEN.items():
            if needle in body:
                where = ", ".join(fields_holding(body, needle.decode()))
                self.problems.add(f"(a) {label} -> {status}: leaks {meaning} (in: {where or '?'})")
        if not binary and (b"\\u0000" in body or b"\x00" in body):
            self.problems.add(f"(a) {label} -> {status}: carries NUL characters")
        if status >= 500:
            self.problems.add(f"(a) {label} -> {status}: server error {body[:160]!r}")

    def data(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self.call(method, path, **kwargs)
        assert answer is not None, f"{method} {path}: no answer"
        status, body = answer
        parsed = httpx.Response(status, content=body).json()
        assert status < 400 and parsed.get("success"), (method, path, status, parsed)
        return parsed["data"]

    def probe(self, uid: str, final: bool = False) -> None:
        """Every read the dashboard makes of a model (and, at the end, its writes)."""
        for path in (
            f"/api/models/{uid}",
            "/api/models/list?size=200",
            "/api/models/list?size=200&withSummary=true",
            f"/api/train/counts/{uid}",
            f"/api/models/{uid}/metrics?split=train",
            f"/api/models/{uid}/metrics?split=val",
            f"/api/models/{uid}/metrics/summary",
            f"/api/models/{uid}/metrics/test",
            f"/api/models/{uid}/results",
            f"/api/models/{uid}/results/download",
            f"/api/models/{uid}/logs",
        ):
            self.call("GET", path)
        if final:
            self.call("POST", f"/api/train/status/{uid}")
            self.call("POST", f"/api/train/create-tmp/{uid}")  # last: it rewrites tmp/


def fields_holding(body: bytes, needle: str) -> list[str]:
    """The JSON fields whose text holds `needle` (to say where a leak is)."""
    try:
        document = json.loads(body)
    except ValueError:
        return []
    found: list[str] = []

    def walk(value: Any, name: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, key)
                if needle in str(key):
                    found.append(f"key of {name}")
        elif isinstance(value, list):
            for item in value:
                walk(item, name)
        elif isinstance(value, str) and needle in value and name not in found:
            found.append(name)

    walk(document, "answer")
    return found


def host_snapshot() -> dict[str, Any]:
    info = ETC.lstat()
    return {
        "passwd": file_fingerprint(PASSWD),
        "etc": {"uid": info.st_uid, "gid": info.st_gid, "mode": oct(info.st_mode)},
        "etc_entries": set(os.listdir(ETC)),
    }


def compare_and_restore_host(before: dict[str, Any], problems: Problems) -> None:
    """(e): report what changed outside the job folder, then undo what the test can undo (the
    current code chowns /etc through `train -> /etc` and writes split lists into it)."""
    after = host_snapshot()
    if after["passwd"] != before["passwd"]:
        problems.add(f"(e) /etc/passwd changed: {before['passwd']} -> {after['passwd']}")
    if after["etc"] != before["etc"]:
        problems.add(f"(e) /etc changed owner/mode: {before['etc']} -> {after['etc']}")
        os.chown(ETC, before["etc"]["uid"], before["etc"]["gid"])
        os.chmod(ETC, int(before["etc"]["mode"], 8) & 0o7777)
    new = sorted(after["etc_entries"] - before["etc_entries"])
    if new:
        problems.add(f"(e) new entries in /etc: {new}")
        for name in new:
            path = ETC / name
            if ETC_LITTER.match(name) and path.is_file() and not path.is_symlink():
                path.unlink()


@dataclass
class JobRow:
    id: int
    job_type: str
    status: str
    error: str | None
    container_name: str | None
    gone: bool


def latest_job(session: Session, uid: str) -> JobRow | None:
    job = session.scalars(
        select(Job).join(Model, Model.id == Job.model_id).where(Model.uuid == uuid.UUID(uid))
        .order_by(Job.id.desc()).limit(1)
    ).one_or_none()  # fmt: skip
    if job is None:
        return None
    return JobRow(
        job.id,
        job.job_type,
        job.status_cd,
        job.error_message,
        job.container_name,
        job.container_gone_dttm is not None,
    )


def model_status(session: Session, uid: str) -> tuple[str, int | None, str | None]:
    """(status, checkpoint epoch, last_error) of a model."""
    model = session.scalars(select(Model).where(Model.uuid == uuid.UUID(uid))).one()
    return model.status_cd, model.checkpoint_epoch, model.last_error


def create_model(api: Api, params: dict[str, Any], image: str | None) -> str:
    body: dict[str, Any] = {
        "modelNo": "G1",
        "modelVer": "hostile",
        "params": params,
        "dataset": "demo",
    }
    if image:
        body["image"] = image
    return api.data("POST", "/api/models", json=body)["uuid"]


def kernel_kills() -> str:
    """The kernel's last OOM kills, when it lets us read them: an exit 137 without Docker's
    OOM flag may still be one (the host's OOM killer, or a flag Docker missed)."""
    try:
        printed = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(dmesg unreadable: {exc})"
    kills = [line for line in printed.splitlines() if "Killed process" in line]
    return "kernel OOM kills (last 5):\n    " + "\n    ".join(kills[-5:])


class Case:
    """One hostile case from its first POST to its last check."""

    def __init__(self, stack: Stack, image: str, case: str) -> None:
        self.stack = stack
        self.case = case
        self.problems = Problems()
        self.api = Api(stack.api.url, self.problems)
        self.image = image
        _, _, name = case.partition(":")
        self.eval_attack = name in EVAL_FILES
        self.link_dir = case.startswith("link-dir-")
        self.uuids: list[str] = []
        self.hostile_jobs: set[int] = set()
        self.max_heartbeat_age = 0.0

    def session(self) -> Session:
        return Session(self.stack.engine)

    def run(self) -> list[str]:
        before = host_snapshot()
        try:
            self._run()
        finally:
            compare_and_restore_host(before, self.problems)
            self.api.http.close()
        return self.problems.items

    def _run(self) -> None:
        total = 4 if self.link_dir else 2
        uid = create_model(
            self.api,
            {"total_epoch": total, "val_interval": 1, "hostile_case": self.case},
            self.image,
        )
        self.uuids.append(uid)
        self.api.uid = uid
        self.api.data("POST", f"/api/train/run/{uid}")
        if self.eval_attack:
            if not self._setup_until(uid, lambda s, j, _m: j.status == "SUCCESS", "TRAIN success"):
                return
            self.api.data("POST", f"/api/train/test/run/2/{uid}")
        elif self.link_dir:
            folder = "train" if self.case.endswith("train-etc") else "tmp"
            planted = self.stack.output_root / uid / folder
            if not self._setup_until(
                uid, lambda _s, j, _m: j.status == "RUNNING" and planted.is_symlink(), "the link"
            ):
                return
            self.api.data("POST", f"/api/train/cancel/{uid}")
            if not self._setup_until(
                uid, lambda _s, _j, m: m[0] == "STOPPED" and m[1], "STOPPED with a checkpoint"
            ):
                return
            self.api.data("POST", f"/api/train/resume/{uid}")
        normal = create_model(
            self.api, {"total_epoch": 2, "val_interval": 1, "epoch_seconds": 1}, None
        )
        self.uuids.append(normal)
        self.api.data("POST", f"/api/train/run/{normal}")
        self._watch(uid, normal)
        self.api.probe(uid, final=True)
        self._check_released(uid)

    def _setup_until(self, uid: str, ready: Any, what: str) -> bool:
        deadline = time.monotonic() + SETUP_DEADLINE_S
        job: JobRow | None = None
        status: tuple[str, int | None, str | None] | None = None
        while time.monotonic() < deadline:
            with self.session() as session:
                job = latest_job(session, uid)
                status = model_status(session, uid)
            if job is not None:
                self.hostile_jobs.add(job.id)
                if ready(session, job, status):
                    return True
                if job.status in TERMINAL and job.status != "SUCCESS" and not self.link_dir:
                    break
            if not self._heartbeat_ok():
                break
            time.sleep(0.3)
        self.problems.add(
            f"setup: the step before the attack did not reach {what} "
            f"(job {job and (job.status, job.error)}, model {status})"
        )
        return False

    def _heartbeat_ok(self) -> bool:
        age = self.stack.heartbeat_age_s()
        if age is None:
            self.problems.add("(b) the node has no heartbeat row")
            return False
        self.max_heartbeat_age = max(self.max_heartbeat_age, age)
        if age >= NODE_LOST_AFTER_S:
            self.problems.add(
                f"(b) node heartbeat stopped: last beat {age:.0f} s ago "
                f"(NODE_LOST_AFTER_S={NODE_LOST_AFTER_S:g})"
            )
            return False
        return True

    def _watch(self, uid: str, normal: str) -> None:
        """Until the hostile job and the normal job are both over (or time is up), probe
        every answer the API gives about the hostile model and watch the heartbeat."""
        start = time.monotonic()
        next_probe = start
        hostile_done = normal_done = False
        job: JobRow | None = None
        normal_status = ""
        last_error: str | None = None
        normal_error: str | None = None
        while time.monotonic() - start < HOSTILE_DEADLINE_S:
            with self.session() as session:
                job = latest_job(session, uid)
                last_error = model_status(session, uid)[2]
                normal_status, _, normal_error = model_status(session, normal)
            if job is not None:
                self.hostile_jobs.add(job.id)
            hostile_done = job is not None and job.status in TERMINAL
            normal_done = normal_status in ("COMPLETED", "ERROR", "STOPPED")
            if not self._heartbeat_ok():
                break
            if time.monotonic() >= next_probe:
                self.api.probe(uid)
                next_probe = time.monotonic() + PROBE_EVERY_S
            if hostile_done and normal_done:
                break
            time.sleep(0.3)
        elapsed = time.monotonic() - start
        if job is not None and "hostile: attacker failed" in (job.error or ""):
            self.problems.add(f"setup: the attacker itself failed: {job.error!r}")
        if not hostile_done:
            self.problems.add(
                f"(c) hostile job not terminal after {elapsed:.0f} s: "
                f"{job and (job.job_type, job.status, (job.error or '')[:120])}"
            )
        elif job is not None and job.status != "SUCCESS" and not CLEAR_CODE.match(last_error or ""):
            self.problems.add(
                f"(c) hostile job {job.status} without a clear code: last_error {last_error!r}"
            )
        if normal_status != "COMPLETED":
            self.problems.add(
                f"(b) the normal job on the same node ended as {normal_status!r}: "
                f"last_error {(normal_error or '')[:200]!r}\n{self._what_the_worker_said(normal)}"
            )

    def _what_the_worker_said(self, uid: str) -> str:
        """The worker's log lines about a job's container: who stopped or removed it, when."""
        with self.session() as session:
            job = latest_job(session, uid)
        if job is None or not job.container_name:
            return "(no container name recorded)"
        name = job.container_name
        lines = [line for line in self.stack.worker.log().splitlines() if name in line]
        said = f"worker log about {name}:\n    " + "\n    ".join(lines[-20:])
        return said + "\n" + kernel_kills()

    def _check_released(self, uid: str) -> None:
        """(d): the hostile job's container is gone (Docker and DB agree) and no GPU lease."""
        with self.session() as session:
            job = latest_job(session, uid)
        if job is None or job.status not in TERMINAL:
            return  # (c) already says it; nothing is expected to be released yet
        client = docker_client()
        assert client is not None
        deadline = time.monotonic() + 15
        gone = exists = False
        while time.monotonic() < deadline:
            with self.session() as session:
                gone = bool(latest_job(session, uid).gone)  # type: ignore[union-attr]
            try:
                client.containers.get(job.container_name or f"trainyard-job-{job.id}")
                exists = True
            except docker.errors.NotFound:
                exists = False
            if gone and not exists:
                break
            time.sleep(0.5)
        if exists:
            self.problems.add(f"(d) container {job.container_name} of job {job.id} not removed")
        if not gone:
            self.problems.add(f"(d) job {job.id}: container_gone_dttm never set")
        with self.session() as session:
            leases = session.execute(
                text("SELECT gpu_id, job_id FROM tb_gpu_lease WHERE node = :n"), {"n": NODE}
            ).all()
        held = [tuple(row) for row in leases if row[1] in self.hostile_jobs]
        if held:
            self.problems.add(f"(d) GPU leases still held by the hostile job: {held}")


@pytest.mark.parametrize("case", CASES)
def test_hostile_trainer(stack: Stack, hostile_image: str, case: str) -> None:
    if not stack.healthy():
        stack.restart([])
    run = Case(stack, hostile_image, case)
    problems: list[str] = []
    clean = False
    try:
        problems = run.run()
        clean = not problems
    finally:
        if not clean or not stack.healthy():
            stack.restart(run.uuids)
    assert not problems, f"{case}:\n  " + "\n  ".join(problems)
