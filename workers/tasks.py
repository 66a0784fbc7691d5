"""Celery tasks: thin, named, take ids, re-read the rows themselves (workers/* does the work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app import messaging
from app.config import load_webhook_settings
from app.db.models import Job
from app.services.webhooks import deliver
from workers import launcher
from workers.celery_app import celery_app
from workers.completion import complete_job as judge_and_ingest
from workers.context import context
from workers.ending import stop_and_collect
from workers.reconcile import sweep as sweep_once
from workers.reconcile import sync_job as sync_one


@celery_app.task(name=messaging.LAUNCH_JOB)
def launch_job(job_id: int) -> str:
    return launcher.launch_job(context(), job_id)


@celery_app.task(
    name=messaging.STOP_JOB, autoretry_for=(RuntimeError,), max_retries=5, default_retry_delay=2
)
def stop_job(job_id: int) -> str:
    ctx = context()
    with ctx.db() as session:
        node = session.scalar(select(Job.node).where(Job.id == job_id))
    if node != ctx.node.node:
        return f"job {job_id} is not on node {ctx.node.node}"
    return stop_and_collect(ctx, job_id)


@celery_app.task(name=messaging.SYNC_JOB)
def sync_job(job_id: int) -> dict[str, Any]:
    return sync_one(context(), job_id)


@celery_app.task(name=messaging.COMPLETE_JOB)
def complete_job(job_id: int) -> str:
    ctx = context()
    return judge_and_ingest(ctx.db, ctx.settings, ctx.publisher, job_id)


@celery_app.task(name=messaging.SWEEP)
def sweep() -> dict[str, int] | None:
    return sweep_once(context())


@celery_app.task(name=messaging.DELIVER_WEBHOOK)
def deliver_webhook(delivery_id: int) -> str:
    return deliver(context().db, load_webhook_settings(), delivery_id)
