"""Webhooks on the real stack (PostgreSQL, Redis, a real HTTP receiver): the event is written
by the status write itself, delivered signed by the workers' task (called here directly, as
the task does), retried after a backoff, dead-lettered after the cap, and listed by the API.
tests/workers/test_webhooks.py drives a whole run through worker processes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import messaging
from app.client import ApiError, TrainyardClient
from app.config import Bounds, WebhookSettings
from app.db.models import OutboxMessage, WebhookDelivery, WebhookEvent
from app.db.session import transaction
from app.domain.timefmt import utcnow
from app.domain.transitions import Command, CommandRequest
from app.services import webhooks
from app.services.publisher import CeleryPublisher
from app.services.status_writes import apply, lock_model
from tests.conftest import TEST_BROKER_URL
from tests.integration.helpers import create_model, queued_tasks
from tests.integration.receiver import Receiver
from tests.workers.conftest import wait_until

SECRET = "whsec-test"


def _settings(**retry: Any) -> WebhookSettings:
    bounds = {"max_attempts": 5, "backoff_s": 0.2, "backoff_max_s": 1.0, **retry}
    return WebhookSettings(secret=SECRET, timeout_s=30.0, retry=Bounds(**bounds))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _deliveries(db: sessionmaker[Session]) -> list[WebhookDelivery]:
    with db() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _deliver_all(db: sessionmaker[Session], settings: WebhookSettings) -> list[str]:
    return [webhooks.deliver(db, settings, d.id) for d in _deliveries(db)]


def test_a_command_writes_its_event_and_the_task_delivers_it_signed(
    client: FlaskClient, db: sessionmaker[Session], broker: redis.Redis, receiver: Receiver
) -> None:
    uid = create_model(client, webhookUrl=receiver.url)["uuid"]
    job = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]

    # Committed with the run: the event, its delivery, and the message that asks for it.
    [delivery] = _deliveries(db)
    assert (delivery.status, delivery.attempts, delivery.target) == ("PENDING", 0, "model")
    [task] = queued_tasks(broker, messaging.QUEUE_WEBHOOKS)
    assert task["task"] == messaging.DELIVER_WEBHOOK
    assert task["kwargs"] == {"delivery_id": delivery.id}
    assert receiver.requests == []  # nothing was sent by the API

    assert "delivered (200)" in webhooks.deliver(db, _settings(), delivery.id)
    [got] = receiver.answered()
    assert got.signed_by(SECRET) and not got.signed_by("another secret")
    event = got.event
    assert event["id"] == got.event_id
    assert event["model"]["uuid"] == uid
    assert event["model"]["status"] == {"old": "READY", "new": "IN_PROGRESS"}
    assert event["model"]["step1"] == {"old": "READY", "new": "IN_PROGRESS"}
    assert event["job"]["id"] == job["id"] and event["job"]["type"] == "TRAIN"
    assert event["job"]["status"] == {"old": None, "new": "QUEUED"}
    assert event["cause"] == {"kind": "command", "name": "run", "code": None, "message": None}
    assert event["links"]["api"].endswith(f"/api/models/{uid}")

    # A second try of a delivered event sends nothing (at least once, not more than asked).
    assert "not due" in webhooks.deliver(db, _settings(), delivery.id)
    assert len(receiver.requests) == 1

    listed = client.get(f"/api/webhooks/deliveries?modelUuid={uid}").get_json()["data"]
    assert listed["totalElements"] == 1
    [row] = listed["content"]
    assert (row["status"], row["attempts"], row["lastStatusCode"]) == ("DELIVERED", 1, 200)
    assert row["eventId"] == got.event_id and row["event"] == event
    assert row["endpoint"] == f"http://127.0.0.1:{receiver.port}"
    detail = client.get(f"/api/models/{uid}").get_json()["data"]
    assert detail["webhookEndpoint"] == f"http://127.0.0.1:{receiver.port}"
    for text in (str(listed), str(detail)):  # the URL's path may be a secret: never served
        assert "secret-path" not in text and "t0ken" not in text and SECRET not in text


def test_the_event_is_part_of_the_status_writes_transaction(
    client: FlaskClient, db: sessionmaker[Session], receiver: Receiver
) -> None:
    uid = create_model(client, webhookUrl=receiver.url)["uuid"]
    with pytest.raises(RuntimeError), transaction(db) as session:
        model = lock_model(session, uuid.UUID(uid))
        assert model is not None
        assert apply(session, model, CommandRequest(Command.RUN)).accepted
        assert session.scalar(select(WebhookEvent.id)) is not None  # written, not committed
        raise RuntimeError("the write fails after apply()")
    with db() as session:  # rolled back together: no event of a change that did not happen
        assert session.scalars(select(WebhookEvent)).all() == []
        assert session.scalars(select(OutboxMessage)).all() == []
    # A rejected command changes nothing, so it sends nothing either.
    assert client.post(f"/api/train/cancel/{uid}").status_code == 409
    assert _deliveries(db) == []


def test_deployment_endpoints_get_every_models_events_in_the_chosen_format(
    client: FlaskClient,
    db: sessionmaker[Session],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slack = Receiver()
    try:
        monkeypatch.setenv("WEBHOOK_URLS", f"{slack.url}")
        monkeypatch.setenv("WEBHOOK_FORMAT", "slack")
        monkeypatch.setenv("PUBLIC_URL", "https://trainyard.example.com/")
        uid = create_model(client, webhookUrl=receiver.url)["uuid"]
        client.post(f"/api/train/run/{uid}")
        client.post(f"/api/train/cancel/{uid}")
        outcomes = _deliver_all(db, _settings())
        assert all("delivered" in o for o in outcomes), outcomes
        texts = [r.event["text"] for r in slack.answered()]
        assert len(texts) == 2 and "READY → IN_PROGRESS" in texts[0]
        assert "IN_PROGRESS → STOPPED" in texts[1] and "CANCELED_BY_USER" in texts[1]
        link = f"<https://trainyard.example.com/#/models/{uid}|open>"
        assert all(t.endswith(link) for t in texts)
        # The model's own endpoint got the same two events as JSON, with the same ids.
        events = [r.event for r in receiver.answered()]
        assert [e["model"]["status"]["new"] for e in events] == ["IN_PROGRESS", "STOPPED"]
        assert {r.event_id for r in receiver.answered()} == {
            r.event_id for r in slack.answered()
        }
        assert events[1]["cause"]["code"] == "CANCELED_BY_USER"
        assert events[0]["sequence"] < events[1]["sequence"]
    finally:
        slack.close()


def test_a_receiver_that_is_down_gets_the_event_after_it_comes_back(
    client: FlaskClient, db: sessionmaker[Session], broker: redis.Redis
) -> None:
    down = Receiver(up=False)  # its port refuses connections
    publisher = CeleryPublisher(TEST_BROKER_URL)
    settings = _settings(backoff_s=0.3)
    try:
        uid = create_model(client, webhookUrl=down.url)["uuid"]
        client.post(f"/api/train/run/{uid}")
        broker.delete(messaging.QUEUE_WEBHOOKS)
        [delivery] = _deliveries(db)
        assert "retrying" in webhooks.deliver(db, settings, delivery.id)
        [failed] = _deliveries(db)
        assert (failed.status, failed.attempts) == ("PENDING", 1)
        assert failed.last_error and "ConnectError" in failed.last_error
        assert "secret-path" not in failed.last_error
        # Waiting its backoff: neither a try nor a message yet.
        assert "not due" in webhooks.deliver(db, settings, delivery.id)
        assert webhooks.publish_due(db, publisher) == 0
        down.up()
        # Due: the sweep's step hands the broker one message for it, once.
        wait_until(lambda: webhooks.publish_due(db, publisher) == 1, 10, "the retry is due")
        assert webhooks.publish_due(db, publisher) == 0
        [task] = queued_tasks(broker, messaging.QUEUE_WEBHOOKS)
        assert task["kwargs"] == {"delivery_id": delivery.id}
        assert "delivered" in webhooks.deliver(db, settings, delivery.id)
        [got] = down.answered()
        assert got.signed_by(SECRET) and got.headers["X-Trainyard-Delivery-Attempt"] == "2"
    finally:
        down.close()
        publisher.results.close()


def test_a_lost_message_is_handed_again_by_the_sweep(
    client: FlaskClient, db: sessionmaker[Session], broker: redis.Redis, receiver: Receiver
) -> None:
    publisher = CeleryPublisher(TEST_BROKER_URL)
    uid = create_model(client, webhookUrl=receiver.url)["uuid"]
    client.post(f"/api/train/run/{uid}")
    broker.delete(messaging.QUEUE_WEBHOOKS)  # Redis lost it
    assert webhooks.publish_due(db, publisher) == 0  # handed over just now: not yet
    ago = utcnow() - timedelta(seconds=webhooks.REPUBLISH_AFTER_S + 1)
    with db.begin() as session:
        session.execute(update(WebhookDelivery).values(enqueued_dttm=ago))
    assert webhooks.publish_due(db, publisher) == 1
    assert len(queued_tasks(broker, messaging.QUEUE_WEBHOOKS)) == 1
    publisher.results.close()


def test_a_delivery_is_dead_lettered_after_the_last_try(
    client: FlaskClient, db: sessionmaker[Session], broker: redis.Redis, receiver: Receiver
) -> None:
    receiver.status = 500
    settings = _settings(max_attempts=3, backoff_s=0.0)
    publisher = CeleryPublisher(TEST_BROKER_URL)
    uid = create_model(client, webhookUrl=receiver.url)["uuid"]
    client.post(f"/api/train/run/{uid}")
    [delivery] = _deliveries(db)
    outcomes = [webhooks.deliver(db, settings, delivery.id) for _ in range(4)]
    assert ["retrying" in o for o in outcomes[:2]] == [True, True]
    assert "dead" in outcomes[2] and "not due" in outcomes[3]
    assert len(receiver.requests) == 3
    [dead] = _deliveries(db)
    assert (dead.status, dead.attempts, dead.last_status_code) == ("DEAD", 3, 500)
    assert dead.dead_dttm is not None and dead.last_error == "HTTP 500 Internal Server Error"
    broker.delete(messaging.QUEUE_WEBHOOKS)
    assert webhooks.publish_due(db, publisher) == 0  # the dead letter stays as it is
    publisher.results.close()

    answer = client.get("/api/webhooks/deliveries?status=DEAD").get_json()["data"]
    assert [(d["status"], d["attempts"], d["lastStatusCode"]) for d in answer["content"]] == [
        ("DEAD", 3, 500)
    ]
    assert answer["content"][0]["deadDttm"] is not None
    assert client.get("/api/webhooks/deliveries?status=DELIVERED").get_json()["data"][
        "totalElements"
    ] == 0


def test_a_hanging_receiver_never_holds_up_a_status_write(
    client: FlaskClient, db: sessionmaker[Session], receiver: Receiver
) -> None:
    """A try in flight to a receiver that does not answer holds no lock and no command: the
    model is canceled while the receiver still holds the run's event."""
    receiver.hold()
    uid = create_model(client, webhookUrl=receiver.url)["uuid"]
    client.post(f"/api/train/run/{uid}")
    [run_event] = _deliveries(db)
    results: list[str] = []
    sending = threading.Thread(
        target=lambda: results.append(webhooks.deliver(db, _settings(), run_event.id))
    )
    sending.start()
    try:
        wait_until(lambda: receiver.held == 1, 10, "the receiver to hold the run's event")
        canceled = client.post(f"/api/train/cancel/{uid}")
        assert canceled.status_code == 200
        assert canceled.get_json()["data"]["statusCd"] == "STOPPED"
        assert receiver.held == 1 and sending.is_alive(), "the try was still waiting"
        assert [d.status for d in _deliveries(db)] == ["PENDING", "PENDING"]
    finally:
        receiver.release()
        sending.join(30)
    assert results and "delivered" in results[0]
    cancel_event = _deliveries(db)[1]
    assert "delivered" in webhooks.deliver(db, _settings(), cancel_event.id)
    news = [r.event["model"]["status"]["new"] for r in receiver.answered()]
    assert news == ["IN_PROGRESS", "STOPPED"]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/hook", "scheme 'ftp'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("https://", "host name"),
    ],
)
def test_a_model_webhook_must_be_an_http_url(
    client: FlaskClient, db: sessionmaker[Session], url: str, words: str
) -> None:
    answer = client.post(
        "/api/models",
        json={"modelNo": "G1", "modelVer": "v", "params": {"total_epoch": 1}, "webhookUrl": url},
    )
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "INVALID_FIELD"
    assert error["message"].startswith("webhookUrl: ") and words in error["message"]


def test_a_webhook_format_other_than_json_or_slack_is_refused(client: FlaskClient) -> None:
    answer = client.post(
        "/api/models",
        json={
            "modelNo": "G1",
            "modelVer": "v",
            "params": {"total_epoch": 1},
            "webhookUrl": "https://example.com/",
            "webhookFormat": "xml",
        },
    )
    assert answer.status_code == 400 and "webhookFormat" in answer.get_json()["error"]["message"]


def test_the_history_refuses_a_bad_query(client: FlaskClient, db: sessionmaker[Session]) -> None:
    bad = client.get("/api/webhooks/deliveries?modelUuid=nope")
    assert bad.status_code == 400 and "modelUuid" in bad.get_json()["error"]["message"]
    unknown = client.get("/api/webhooks/deliveries?modelUuid=6f1c1b7e-7d1a-4a55-9d6a-0d7e1c2b3a4f")
    assert unknown.status_code == 404
    status = client.get("/api/webhooks/deliveries?status=LOST")
    assert status.status_code == 400 and "status" in status.get_json()["error"]["message"]
    empty = client.get("/api/webhooks/deliveries").get_json()["data"]
    assert empty == {"content": [], "totalElements": 0, "totalPages": 0}


def test_a_bad_deployment_setting_stops_the_start_naming_it(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.factory import create_app

    monkeypatch.setenv("WEBHOOK_URLS", "https://ok.example.com/a gopher://x/")
    with pytest.raises(ValueError, match=r"WEBHOOK_URLS: .*scheme 'gopher'"):
        create_app(settings)
    monkeypatch.setenv("WEBHOOK_URLS", "")
    monkeypatch.setenv("WEBHOOK_FORMAT", "teams")
    with pytest.raises(ValueError, match="WEBHOOK_FORMAT"):
        create_app(settings)


def test_the_client_lists_deliveries(
    app: Any, client: FlaskClient, db: sessionmaker[Session], receiver: Receiver
) -> None:
    uid = create_model(client, webhookUrl=receiver.url)["uuid"]
    client.post(f"/api/train/run/{uid}")
    _deliver_all(db, _settings())
    api = TrainyardClient("http://localhost", transport=httpx.WSGITransport(app=app))
    with api:
        page = api.webhook_deliveries(uid)
        assert [(d["status"], d["modelUuid"]) for d in page["content"]] == [("DELIVERED", uid)]
        assert api.webhook_deliveries(status="DEAD")["totalElements"] == 0
        with pytest.raises(ApiError) as bad:
            api.webhook_deliveries(status="LOST")
        assert bad.value.status == 400


def test_a_hanging_receiver_holds_one_sender_not_the_workers_threads(
    client: FlaskClient, db: sessionmaker[Session], receiver: Receiver
) -> None:
    """WEBHOOK_SENDERS=1: while one try hangs, the next delivery is put off at once (no try
    counted) instead of taking a second task thread, and goes out once it is due again."""
    slots = webhooks.SenderSlots(1)
    receiver.hold()
    uid = create_model(client, webhookUrl=receiver.url)["uuid"]
    client.post(f"/api/train/run/{uid}")
    client.post(f"/api/train/cancel/{uid}")
    first, second = _deliveries(db)
    results: list[str] = []
    sending = threading.Thread(
        target=lambda: results.append(webhooks.deliver(db, _settings(), first.id, slots))
    )
    sending.start()
    try:
        wait_until(lambda: receiver.held == 1, 10, "the receiver to hold the first event")
        assert "put off" in webhooks.deliver(db, _settings(), second.id, slots)
        put_off = _deliveries(db)[1]
        assert (put_off.attempts, put_off.enqueued_dttm) == (0, None)
        assert put_off.next_attempt_dttm is not None
        assert len(receiver.requests) == 1
    finally:
        receiver.release()
        sending.join(30)
    assert results and "delivered" in results[0]
    wait_until(
        lambda: "delivered" in webhooks.deliver(db, _settings(), second.id, slots),
        10,
        "the put-off delivery to go out",
    )
    assert [r.event["model"]["status"]["new"] for r in receiver.answered()] == [
        "IN_PROGRESS",
        "STOPPED",
    ]
