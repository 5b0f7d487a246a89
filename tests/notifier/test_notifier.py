"""The notifier against a real PostgreSQL (the embedded stack's wheel) and a real SMTP sink
(aiosmtpd).

Handlers run in a transaction as the consumer runs them (and once through the consumer
itself); the sender loop runs as a task and delivers to an aiosmtpd Maildir, read back with
the stdlib `mailbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import markupsafe
import pytest
from aiokafka import ConsumerRecord
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from prometheus_client import REGISTRY

from loadbay_contracts import (
    DistributionFinished,
    Envelope,
    Event,
    GraphLoadFinished,
    IngestionFinished,
    Recipient,
    ReloadFinished,
    ReloadRejected,
)
from loadbay_notifier import repository
from loadbay_notifier.app import NotifierService
from loadbay_notifier.handlers import (
    handler_map,
    on_distribution_finished,
    on_graph_load_finished,
    on_ingestion_finished,
    on_reload_finished,
    on_reload_rejected,
)
from loadbay_notifier.rows import Email
from loadbay_notifier.sender import EmailSender, message_id
from loadbay_notifier.settings import NotifierSettings
from loadbay_notifier.templates import (
    MANUAL_RECOVERY_STEPS,
    MAX_LISTED_FILES,
    render_distribution_finished,
    render_graph_load_finished,
    render_ingestion_finished,
    render_reload_finished,
)
from loadbay_platform.auth import mint_token
from loadbay_platform.broker import create_broker
from loadbay_platform.consumer import Consumer
from loadbay_platform.db import close_pool, create_pool, migrate
from loadbay_platform.http import create_app
from loadbay_platform.service import Resources
from loadbay_platform.settings import (
    AuthSettings,
    KafkaSettings,
    PlatformSettings,
    PostgresSettings,
    SmtpSettings,
)
from tests.own_postgres import own_postgres

T = TypeVar("T")
SCHEMA = "loadbay_notifier"
ALICE = Recipient(user_id="alice", email="alice@example.com")
BOB = Recipient(user_id="bob", email="bob@example.com")
REASON = (
    'orders-2024.csv line 17, column "amount": value "12,5<b>" is not a decimal'
    " & the reload stopped"
)


def escaped(text: str) -> str:
    """`text` as the emails' HTML shows it (escaped by Jinja2, as markupsafe does)."""
    return str(markupsafe.escape(text))


# -- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with own_postgres("loadbay-notifier-pg-") as url:
        yield url


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
async def template_db(pg_url: str) -> str:
    """A database with the notifier's migrations applied, copied for every test."""
    name = "notifier_template"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(with_database(pg_url, name))
    try:
        await migrate(conn, SCHEMA, "loadbay_notifier")
    finally:
        await conn.close()
    return name


@pytest.fixture
async def pool(pg_url: str, template_db: str) -> AsyncIterator[asyncpg.Pool]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    finally:
        await admin.close()
    settings = PostgresSettings(url=with_database(pg_url, name), pool_max_size=4)
    pool = await create_pool(settings, SCHEMA)
    try:
        yield pool
    finally:
        await close_pool(pool)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SmtpSink:
    """An aiosmtpd server storing every message in a Maildir; started on demand."""

    def __init__(self, maildir: Path, port: int) -> None:
        self.maildir = maildir
        self.port = port
        self.controller: Controller | None = None

    async def start(self) -> None:
        self.controller = Controller(Mailbox(self.maildir), hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(self.controller.start)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def messages(self) -> list[Message]:
        if not self.maildir.exists():
            return []
        return list(mailbox.Maildir(self.maildir, create=False))

    async def received(self) -> list[Message]:
        return self.messages()


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[SmtpSink]:
    """An SMTP sink that is down until the test starts it."""
    sink = SmtpSink(tmp_path / "maildir", free_port())
    try:
        yield sink
    finally:
        sink.stop()


@contextlib.asynccontextmanager
async def running_sender(
    pool: asyncpg.Pool, port: int, **overrides: Any
) -> AsyncIterator[EmailSender]:
    # A long poll interval: prompt deliveries below are the NOTIFY wake-up's doing.
    options: dict[str, Any] = {
        "retry_base_s": 0.1,
        "retry_max_s": 0.4,
        "poll_interval_s": 5.0,
        "claim_lease_s": 20.0,
    }
    sender = EmailSender(
        pool,
        SmtpSettings(host="127.0.0.1", port=port, timeout_s=2.0),
        NotifierSettings(**{**options, **overrides}),
        acquire_timeout_s=5.0,
    )
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        crashed = task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not crashed, "the sender loop ended on its own"


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float = 5.0, interval: float = 0.02
) -> T:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {within}s (last value: {value!r})")
        await asyncio.sleep(interval)


# -- events ------------------------------------------------------------------------------------


def reload_failed(*recipients: Recipient) -> ReloadFinished:
    started = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    return ReloadFinished(
        execution_id="exec-1",
        dataset_id="ds-1",
        domain="sales",
        dataset_name="orders",
        status="failed",
        reason=REASON,
        files=("orders-2024.csv", "orders-2025.csv"),
        started_at=started,
        finished_at=started + timedelta(seconds=4.2),
        triggered_by="alice",
        recipients=recipients or (ALICE, BOB),
    )


def reload_rejected() -> ReloadRejected:
    return ReloadRejected(
        dataset_id="ds-1",
        domain="sales",
        dataset_name="orders",
        batch="upload_date=1700000000/alice/csv",
        running_execution_id="exec-running",
        reason="a reload of sales/orders is running (execution exec-running)",
        recipients=(ALICE,),
    )


def distribution_run(**update: Any) -> DistributionFinished:
    """A partially failed run: two failed loads (one workspace now needs manual recovery) and
    a problem."""
    started = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    event = DistributionFinished(
        run_id="run-42",
        data_product_id="dp-1",
        data_product="sales",
        status="partially_failed",
        loads=12,
        failures=(f"ws-2/orders: {REASON}", "ws-3/orders: connection reset"),
        needs_recovery=("ws-3/orders",),
        problems=("Orders_2026_inc.csv: no timestamp in the file name",),
        started_at=started,
        finished_at=started + timedelta(minutes=2, seconds=5),
        recipients=(ALICE, BOB),
    )
    return event.model_copy(update=update)


def ingestion_run(**update: Any) -> IngestionFinished:
    """A failed run: one object copied before it stopped, two skipped and one failed."""
    started = datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
    event = IngestionFinished(
        run_id="ing-7",
        connection="partner-s3",
        dataset="sales/orders",
        version="1.0",
        status="failed",
        reason=REASON,
        copied=("in/orders-2026-01.csv",),
        skipped=(
            "in/orders-2025-12.csv: same name, size and ETag as already ingested",
            "archive/orders-2019.csv: storage class GLACIER",
        ),
        failed=("in/orders-2026-02.csv: AccessDenied",),
        bytes_copied=123456,
        skip_lz=True,
        started_at=started,
        finished_at=started + timedelta(seconds=42),
        recipients=(ALICE, BOB),
    )
    return event.model_copy(update=update)


LOAD_ID = "0a237328-afd5-4574-a0bc-c29ce5f54802"
GRAPH_ERROR = 'PARSING_ERROR s3://graph/people/v.csv#17: bad header "<name>" & more'


def graph_load(**update: Any) -> GraphLoadFinished:
    """A failed bulk load: 12,345 records handled before it stopped, three errors."""
    started = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    event = GraphLoadFinished(
        load_id=LOAD_ID,
        source="s3://graph/people/",
        format="csv",
        status="LOAD_FAILED",
        total_records=12345,
        total_duplicates=6,
        parsing_errors=2,
        datatype_mismatch_errors=1,
        insert_errors=0,
        first_errors=(
            GRAPH_ERROR,
            "PARSING_ERROR s3://graph/people/v.csv#18: unexpected end of line",
            "DATATYPE_MISMATCH s3://graph/people/e.csv#3: age:Int is not an Int",
        ),
        started_at=started,
        finished_at=started + timedelta(minutes=1, seconds=15),
        recipients=(ALICE, BOB),
    )
    return event.model_copy(update=update)


def wrap(event: Event) -> Envelope:
    return Envelope.wrap(event, source="loadbay/reload", correlation_id=f"corr-{uuid.uuid4()}")


async def handle(pool: asyncpg.Pool, envelope: Envelope, event: Any, handler: Any) -> None:
    """What the consumer does around a handler: one transaction for the effect."""
    async with pool.acquire() as conn, conn.transaction():
        await handler(conn, envelope, event)


async def email_row(pool: asyncpg.Pool, event_id: str) -> Email | None:
    async with pool.acquire() as conn:
        return await repository.get_email_by_event(conn, event_id)


def parts(message: Message) -> dict[str, str]:
    found = {}
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[part.get_content_type()] = payload.decode(part.get_content_charset() or "utf-8")
    return found


# -- tests -------------------------------------------------------------------------------------


async def test_a_failed_reload_sends_one_email_to_every_recipient_with_the_reason(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    await smtp.start()
    event = reload_failed()
    envelope = wrap(event)
    async with running_sender(pool, smtp.port):
        await asyncio.sleep(0.1)  # let the loop go idle, listening
        recorded = time.monotonic()
        await handle(pool, envelope, event, on_reload_finished)
        messages = await eventually(smtp.received, within=5)
        latency = time.monotonic() - recorded
        row = await eventually(
            lambda: _with_status(pool, envelope.id, "sent"), within=2, interval=0.02
        )

    # Under half the 5 s poll interval: only the NOTIFY wake-up delivers this soon (a busy
    # machine can take a good part of a second to schedule the steps in between).
    assert latency < 2.5, f"delivered {latency:.2f}s after it was recorded"
    assert len(messages) == 1
    message = messages[0]
    assert message["X-RcptTo"] == "alice@example.com, bob@example.com"
    assert message["To"] == "alice@example.com, bob@example.com"
    assert message["Subject"] == "[loadbay] Reload of sales/orders failed"
    assert message["Message-ID"] == message_id(envelope.id, "localhost")
    assert message["X-Loadbay-Event-Id"] == envelope.id
    assert message["X-Loadbay-Correlation-Id"] == envelope.correlationid
    assert message.get_content_type() == "multipart/alternative"
    bodies = parts(message)
    assert REASON in bodies["text/plain"]
    assert "back in pending" in bodies["text/plain"]
    assert escaped(REASON) in bodies["text/html"]  # as Jinja2 escapes it
    assert "<b>" not in bodies["text/html"]  # the value is shown, not interpreted
    assert "back in pending" in bodies["text/html"]
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.recipients == ["alice@example.com", "bob@example.com"]


async def test_the_same_event_handled_twice_sends_one_email(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    await smtp.start()
    event = reload_failed(ALICE)
    envelope = wrap(event)
    # Through the real consumer: the inbox sees the redelivery...
    consumer = Consumer(
        service="notifier",
        pool=pool,
        broker=create_broker(KafkaSettings()),  # never connected: only dead letters need it
        kafka=KafkaSettings(),
        handlers=handler_map(),
    )
    value = envelope.model_dump_json().encode()
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        ReloadFinished.topic(), 0, 7, 0, 0, b"ds-1", value, None, 4, len(value), []
    )
    await consumer.process(record)
    await consumer.process(record)
    # ...and straight to the handler (an inbox row lost, or another consumer group): the
    # email table itself keeps one email per event id.
    await handle(pool, envelope, event, on_reload_finished)

    async with running_sender(pool, smtp.port):
        await eventually(lambda: _with_status(pool, envelope.id, "sent"))
        await asyncio.sleep(0.3)  # room for a duplicate to show up

    assert len(smtp.messages()) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM emails") == 1
        assert await conn.fetchval("SELECT count(*) FROM inbox") == 1


async def test_an_email_is_delivered_once_the_relay_comes_back(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    event = reload_failed()
    envelope = wrap(event)
    async with running_sender(pool, smtp.port):
        await handle(pool, envelope, event, on_reload_finished)

        async def retried() -> Email | None:
            row = await email_row(pool, envelope.id)
            return row if row is not None and row.attempts >= 2 else None

        row = await eventually(retried)
        assert row.status == "pending"
        assert "connect" in row.last_error.lower()

        await smtp.start()
        row = await eventually(lambda: _with_status(pool, envelope.id, "sent"))
        await asyncio.sleep(0.3)

    assert row.attempts > 1
    messages = smtp.messages()
    assert len(messages) == 1
    assert messages[0]["X-Loadbay-Event-Id"] == envelope.id


async def test_an_email_is_given_up_after_max_attempts(pool: asyncpg.Pool, smtp: SmtpSink) -> None:
    def failed_total() -> float:
        sample = REGISTRY.get_sample_value(
            "loadbay_emails_failed_total", {"event_type": "reload.finished"}
        )
        return sample or 0.0

    before = failed_total()
    event = reload_failed()
    envelope = wrap(event)
    async with running_sender(pool, smtp.port, max_attempts=2):
        await handle(pool, envelope, event, on_reload_finished)
        row = await eventually(lambda: _with_status(pool, envelope.id, "failed"))

    assert row.attempts == 2
    assert "gave up after 2 attempts" in row.last_error
    assert failed_total() == before + 1


async def test_a_rejected_reload_says_nothing_started_and_files_stay_pending(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    await smtp.start()
    event = reload_rejected()
    envelope = wrap(event)
    async with running_sender(pool, smtp.port):
        await handle(pool, envelope, event, on_reload_rejected)
        messages = await eventually(smtp.received)

    message = messages[0]
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "[loadbay] Reload of sales/orders not started: a reload is running"
    for body in parts(message).values():
        assert "nothing was started" in body
        assert "stay pending" in body
        assert "exec-running" in body
        assert "upload_date=1700000000/alice/csv" in body


def test_a_successful_reload_reports_rows_files_and_timings() -> None:
    event = reload_failed().model_copy(
        update={"status": "succeeded", "reason": None, "rows": 1234567, "bytes": 2048}
    )
    email = render_reload_finished(event)
    assert email.subject == "[loadbay] Reload of sales/orders succeeded"
    for body in (email.text, email.html):
        assert "sales/orders" in body
        assert "1,234,567" in body
        assert "orders-2024.csv" in body
        assert "orders-2025.csv" in body
        assert "4.2 s" in body
        assert "2026-11-21T09:00:00+00:00" in body


def test_html_escapes_every_value_from_the_event() -> None:
    event = reload_failed().model_copy(
        update={"dataset_name": "<script>x</script>", "files": ("a&b.csv",)}
    )
    email = render_reload_finished(event)
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "a&amp;b.csv" in email.html


async def test_a_distribution_run_needing_recovery_is_emailed_with_the_recovery_steps(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    await smtp.start()
    event = distribution_run()
    envelope = wrap(event)
    # Through the real consumer, so the event's registration in the handler map counts.
    consumer = Consumer(
        service="notifier",
        pool=pool,
        broker=create_broker(KafkaSettings()),  # never connected: only dead letters need it
        kafka=KafkaSettings(),
        handlers=handler_map(),
    )
    value = envelope.model_dump_json().encode()
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        DistributionFinished.topic(), 0, 3, 0, 0, b"dp-1", value, None, 4, len(value), []
    )
    async with running_sender(pool, smtp.port):
        await consumer.process(record)
        messages = await eventually(smtp.received)
        row = await eventually(lambda: _with_status(pool, envelope.id, "sent"))

    assert handler_map()[DistributionFinished] is on_distribution_finished
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == "alice@example.com, bob@example.com"
    # A long subject comes folded onto two header lines (RFC 5322): unfold it.
    assert " ".join(str(message["Subject"]).split()) == (
        "[loadbay] Distribution of sales partially failed:"
        " 1 workspace needs manual recovery, 1 problem"
    )
    assert message["X-Loadbay-Event-Type"] == "distribution.finished"
    assert message["X-Loadbay-Event-Id"] == envelope.id
    bodies = parts(message)
    text, page = bodies["text/plain"], bodies["text/html"]
    assert "2 loads of 12 into client workspaces failed" in text
    assert f"ws-2/orders: {REASON}" in text
    assert "ws-3/orders: connection reset" in text
    assert "Needing manual recovery (1):\n  - ws-3/orders" in text
    assert "three times in a row" in text
    for n, step in enumerate(MANUAL_RECOVERY_STEPS, 1):
        assert f"  {n}. {step}" in text
        assert f"<li>{escaped(step)}</li>" in page
    assert "Orders_2026_inc.csv: no timestamp in the file name" in text
    assert escaped(f"ws-2/orders: {REASON}") in page
    assert "<b>" not in page
    assert "<ol>" in page
    assert (row.event_type, row.attempts) == ("distribution.finished", 1)


def test_the_recovery_steps_are_the_seeds() -> None:
    steps = " ".join(MANUAL_RECOVERY_STEPS).lower()
    for words in (
        "export the data the workspace is missing",
        "new timestamp",
        "upload the source file",
        "delete the old source files that failed to load",
        "run the distribution again",
    ):
        assert words in steps


async def test_a_fully_successful_distribution_run_is_emailed_too(pool: asyncpg.Pool) -> None:
    event = distribution_run(status="succeeded", failures=(), needs_recovery=(), problems=())
    envelope = wrap(event)
    await handle(pool, envelope, event, on_distribution_finished)

    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT subject, recipients, body_text, body_html FROM emails WHERE event_id = $1",
            envelope.id,
        )
    assert row is not None
    assert row["subject"] == "[loadbay] Distribution of sales succeeded"
    assert row["recipients"] == ["alice@example.com", "bob@example.com"]
    for body in (row["body_text"], row["body_html"]):
        assert "all 12 loads into client workspaces succeeded" in body
        assert "2 min 5 s" in body
        assert "2026-11-21T06:00:00+00:00" in body
        assert "manual recovery" not in body.lower()
        assert "Failed loads (" not in body
        assert "Problems (" not in body


def test_a_successful_distribution_run_with_problems_says_so() -> None:
    event = distribution_run(status="succeeded", failures=(), needs_recovery=())
    email = render_distribution_finished(event)
    assert email.subject == "[loadbay] Distribution of sales succeeded: 1 problem"
    assert "Problems (1):" in email.text
    assert "misnamed source files" in email.text
    assert "Manual recovery steps" not in email.text


def test_a_failed_distribution_run_lists_the_failures_and_the_retry() -> None:
    event = distribution_run(
        status="failed",
        loads=2,
        needs_recovery=("ws-2/orders", "ws-3/orders", "ws-3/customers"),
        problems=(),
    )
    email = render_distribution_finished(event)
    assert email.subject == (
        "[loadbay] Distribution of sales failed: 2 workspaces need manual recovery"
    )
    assert "failed: 2 loads of 2 into client workspaces failed." in email.text
    assert "the next run tries the failed source file again" in email.text
    assert "2 workspaces failed to load three times in a row" in email.text
    assert "Needing manual recovery (3):" in email.text
    assert "Manual recovery steps, for each of them:" in email.text
    assert "Problems (" not in email.text


def test_a_distribution_email_escapes_folds_and_caps_what_the_event_says() -> None:
    failures = tuple(f"ws-{i}/orders: bad <row> & more" for i in range(MAX_LISTED_FILES + 70))
    event = distribution_run(
        data_product="sales\r\nBcc: eve@example.com <script>",
        failures=failures,
        problems=("line one\nline two", "x" * 5000),
    )
    email = render_distribution_finished(event)
    assert "\n" not in email.subject and "\r" not in email.subject
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "<row>" not in email.html
    assert "bad &lt;row&gt; &amp; more" in email.html
    assert f"Failed loads ({len(failures)}):" in email.text
    assert f"ws-{MAX_LISTED_FILES - 1}/orders" in email.text
    assert f"ws-{MAX_LISTED_FILES}/orders" not in email.text
    assert "... and 70 more" in email.text
    assert "<p>... and 70 more</p>" in email.html
    assert "  - line one line two" in email.text
    assert "x" * 5000 not in email.text
    assert "x" * 990 + "..." in email.text


async def test_a_failed_ingestion_run_is_emailed_with_the_reason_first(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    await smtp.start()
    event = ingestion_run()
    envelope = wrap(event)
    # Through the real consumer, so the event's registration in the handler map counts.
    consumer = Consumer(
        service="notifier",
        pool=pool,
        broker=create_broker(KafkaSettings()),  # never connected: only dead letters need it
        kafka=KafkaSettings(),
        handlers=handler_map(),
    )
    value = envelope.model_dump_json().encode()
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        IngestionFinished.topic(), 0, 5, 0, 0, b"sales/orders", value, None, 4, len(value), []
    )
    async with running_sender(pool, smtp.port):
        await consumer.process(record)
        messages = await eventually(smtp.received)
        row = await eventually(lambda: _with_status(pool, envelope.id, "sent"))

    assert handler_map()[IngestionFinished] is on_ingestion_finished
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == "alice@example.com, bob@example.com"
    assert " ".join(str(message["Subject"]).split()) == (
        "[loadbay] Ingestion from partner-s3 into sales/orders failed"
    )
    assert message["X-Loadbay-Event-Type"] == "ingestion.finished"
    assert message["X-Loadbay-Event-Id"] == envelope.id
    bodies = parts(message)
    text, page = bodies["text/plain"], bodies["text/html"]
    assert text.startswith(f"Reason: {REASON}\n")
    assert page.index(escaped(REASON)) < page.index("ingestion run ing-7")
    assert "<b>" not in page
    assert "1 object (123,456 bytes) had been copied before it ended" in text
    assert "Failed objects (1):\n  - in/orders-2026-02.csv: AccessDenied" in text
    assert (
        "Skipped objects (2):\n"
        "  - in/orders-2025-12.csv: same name, size and ETag as already ingested\n"
        "  - archive/orders-2019.csv: storage class GLACIER"
    ) in text
    assert "Copied objects (1):\n  - in/orders-2026-01.csv" in text
    assert "<li>archive/orders-2019.csv: storage class GLACIER</li>" in page
    for body in (text, page):
        assert "partner-s3" in body
        assert "42.0 s" in body
        assert "2026-11-21T07:00:00+00:00" in body
    assert "Skip LZ:         yes" in text
    assert (row.event_type, row.attempts) == ("ingestion.finished", 1)


def test_a_successful_ingestion_run_counts_copied_and_skipped_objects() -> None:
    event = ingestion_run(
        status="succeeded",
        reason=None,
        copied=("a.csv", "b.csv", "c.csv"),
        failed=(),
        bytes_copied=2048,
        skip_lz=False,
    )
    email = render_ingestion_finished(event)
    assert email.subject == (
        "[loadbay] Ingestion from partner-s3 into sales/orders succeeded:"
        " 3 objects copied, 2 skipped"
    )
    assert email.text.startswith(
        "The ingestion run ing-7 from S3 connection partner-s3 into dataset sales/orders"
        " succeeded: 3 objects (2,048 bytes) copied."
    )
    assert "Reason:" not in email.text
    assert "2 objects were skipped and not copied" in email.text
    assert "Skipped objects (2):" in email.text
    assert "Failed objects (" not in email.text
    assert "Copied objects (3):" in email.text
    assert "Bytes copied:    2,048" in email.text
    assert "Skip LZ:         no" in email.text
    assert "Failed objects (" not in email.html
    assert "<li>c.csv</li>" in email.html

    nothing = render_ingestion_finished(
        event.model_copy(update={"copied": (), "skipped": (), "bytes_copied": 0})
    )
    assert nothing.subject.endswith("succeeded: 0 objects copied")
    assert "succeeded, but copied no object." in nothing.text
    assert "objects (" not in nothing.text


def test_an_ingestion_email_escapes_folds_and_caps_what_the_event_says() -> None:
    skipped = tuple(f"k-{i}<x>.csv: storage class GLACIER" for i in range(MAX_LISTED_FILES + 5))
    event = ingestion_run(
        connection="conn\r\nBcc: eve@example.com <script>",
        reason=None,
        copied=(),
        skipped=skipped,
        failed=("bad & <broken>.csv: " + "y" * 5000,),
    )
    email = render_ingestion_finished(event)
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.text.startswith("Reason: no reason was given\n")
    assert "failed; no object was copied." in email.text
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert "<x>" not in email.html and "k-0&lt;x&gt;.csv" in email.html
    assert "bad &amp; &lt;broken&gt;.csv" in email.html
    assert f"Skipped objects ({len(skipped)}):" in email.text
    assert f"k-{MAX_LISTED_FILES - 1}<x>.csv" in email.text
    assert f"k-{MAX_LISTED_FILES}<x>.csv" not in email.text
    assert "... and 5 more" in email.text
    assert "<p>... and 5 more</p>" in email.html
    assert "y" * 5000 not in email.text
    assert "y" * 900 + "..." in email.text


async def test_a_failed_graph_load_is_emailed_with_what_stays_and_where_the_errors_are(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    await smtp.start()
    event = graph_load()
    envelope = wrap(event)
    # Through the real consumer, so the event's registration in the handler map counts.
    consumer = Consumer(
        service="notifier",
        pool=pool,
        broker=create_broker(KafkaSettings()),  # never connected: only dead letters need it
        kafka=KafkaSettings(),
        handlers=handler_map(),
    )
    value = envelope.model_dump_json().encode()
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        GraphLoadFinished.topic(), 0, 9, 0, 0, LOAD_ID.encode(), value, None, 4, len(value), []
    )
    async with running_sender(pool, smtp.port):
        await consumer.process(record)
        messages = await eventually(smtp.received)
        row = await eventually(lambda: _with_status(pool, envelope.id, "sent"))

    assert handler_map()[GraphLoadFinished] is on_graph_load_finished
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == "alice@example.com, bob@example.com"
    assert " ".join(str(message["Subject"]).split()) == (
        "[loadbay] Graph load 0a237328 of s3://graph/people/: failed"
    )
    assert message["X-Loadbay-Event-Type"] == "graph.load.finished"
    assert message["X-Loadbay-Event-Id"] == envelope.id
    bodies = parts(message)
    text, page = bodies["text/plain"], bodies["text/html"]
    assert f"First errors (3):\n  - {GRAPH_ERROR}\n" in text
    assert f"<li>{escaped(GRAPH_ERROR)}</li>" in page
    assert "<name>" not in page
    for body in (text, page):
        assert "the data loaded before the error stays in the graph" in body
        assert "not atomic" in body
        assert f"GET /loader/{LOAD_ID}?errors=TRUE lists all its errors" in body
        assert "12,345 records (6 duplicates, 3 errors)" in body
        assert "1 min 15 s" in body
        assert "2026-11-21T08:00:00+00:00" in body
    assert "Datatype mismatch errors: 1\n" in text
    assert "Status:                   LOAD_FAILED\n" in text
    assert (row.event_type, row.attempts) == ("graph.load.finished", 1)


def test_a_completed_graph_load_reports_neptunes_counters() -> None:
    event = graph_load(
        status="LOAD_COMPLETED",
        parsing_errors=0,
        datatype_mismatch_errors=0,
        first_errors=(),
    )
    email = render_graph_load_finished(event)
    assert email.subject == "[loadbay] Graph load 0a237328 of s3://graph/people/: completed"
    assert email.text.startswith(
        f"The graph load {LOAD_ID} of s3://graph/people/ (csv) completed:"
        " 12,345 records (6 duplicates, 0 errors).\n"
    )
    for label, value in (
        ("Total records", "12,345"),
        ("Total duplicates", "6"),
        ("Parsing errors", "0"),
        ("Datatype mismatch errors", "0"),
        ("Insert errors", "0"),
        ("Duration", "1 min 15 s"),
    ):
        assert f"{label + ':':<25} {value}\n" in email.text
        assert f'<tr><th align="left">{label}</th><td>{value}</td></tr>' in email.html
    for body in (email.text, email.html):
        assert "First errors" not in body
        assert "not atomic" not in body
        assert "errors=TRUE" not in body

    # Completed past errors (failOnError off): said in the subject, with where to read them.
    with_errors = render_graph_load_finished(graph_load(status="LOAD_COMPLETED"))
    assert with_errors.subject.endswith(": completed with 3 errors")
    assert "may be missing from the graph" in with_errors.text
    assert f"GET /loader/{LOAD_ID}?errors=TRUE lists all its errors" in with_errors.text
    assert "First errors (3):" in with_errors.text
    assert "not atomic" not in with_errors.text


def test_a_graph_load_that_ended_early_says_in_words_how() -> None:
    cancelled = render_graph_load_finished(graph_load(status="LOAD_CANCELLED_BY_USER"))
    assert cancelled.subject.endswith(": cancelled by the user")
    assert "the data loaded before it was cancelled stays in the graph" in cancelled.text

    # A load never started for its dependencies loaded nothing: no "what stays", no timings.
    blocked = render_graph_load_finished(
        graph_load(
            status="LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED",
            total_records=0,
            total_duplicates=0,
            parsing_errors=0,
            datatype_mismatch_errors=0,
            first_errors=(),
            started_at=None,
        )
    )
    assert blocked.subject.endswith(": not run, dependency not satisfied")
    assert "did not run: a load it depends on did not complete" in blocked.text
    assert "not atomic" not in blocked.text
    assert "Started:" not in blocked.text and "Duration:" not in blocked.text
    assert "Finished:" in blocked.text

    unknown = render_graph_load_finished(graph_load(status="LOAD_SOMETHING_NEW"))
    assert unknown.subject.endswith(": something new")
    assert "not atomic" in unknown.text


def test_a_graph_load_email_escapes_folds_and_caps_what_the_event_says() -> None:
    first = tuple(f"INSERT_ERROR v<{i}>.csv#1: & no" for i in range(MAX_LISTED_FILES + 3))
    event = graph_load(
        source="s3://graph/\r\nBcc: eve@example.com <script>",
        first_errors=("z" * 5000, *first),
    )
    email = render_graph_load_finished(event)
    assert "\n" not in email.subject and "\r" not in email.subject
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert "<0>" not in email.html and "INSERT_ERROR v&lt;0&gt;.csv#1: &amp; no" in email.html
    assert f"First errors ({len(first) + 1}):" in email.text
    assert "z" * 5000 not in email.text and "z" * 997 + "..." in email.text
    assert f"v<{MAX_LISTED_FILES - 2}>.csv" in email.text
    assert f"v<{MAX_LISTED_FILES - 1}>.csv" not in email.text
    assert "... and 4 more" in email.text
    assert "<p>... and 4 more</p>" in email.html


async def test_migrations_build_the_emails_table_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await migrate(conn, SCHEMA, "loadbay_notifier") == []
        applied = await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")
        columns = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = 'emails' ORDER BY ordinal_position",
            SCHEMA,
        )
    assert [r["name"] for r in applied] == [
        "0000_platform.sql",
        "0000_platform_work_queue.sql",
        "0001_notifier.sql",
        "0002_email_claims.sql",
    ]
    assert {r["column_name"]: r["data_type"] for r in columns} == {
        "id": "bigint",
        "event_id": "text",
        "event_type": "text",
        "correlation_id": "text",
        "recipients": "ARRAY",
        "subject": "text",
        "body_text": "text",
        "body_html": "text",
        "status": "text",
        "attempts": "integer",
        "last_error": "text",
        "next_attempt_at": "timestamp with time zone",
        "sent_at": "timestamp with time zone",
        "created_at": "timestamp with time zone",
        "claimed_by": "text",
    }


async def test_an_idle_sender_waits_its_poll_interval(pool: asyncpg.Pool) -> None:
    """With no email pending there is nothing due: the sender sleeps the whole interval (a 0
    here had it query the database without pause while idle)."""
    async with pool.acquire() as conn:
        assert await repository.seconds_until_next_due(conn) is None
    sender = EmailSender(pool, SmtpSettings(), NotifierSettings(poll_interval_s=0.7))
    assert await sender._seconds_until_next_due() == 0.7


async def test_get_emails_lists_the_callers_emails(pool: asyncpg.Pool) -> None:
    event = reload_failed()
    envelope = wrap(event)
    await handle(pool, envelope, event, on_reload_finished)

    settings = PlatformSettings(auth=AuthSettings())

    async def ready() -> None:
        return None

    service = NotifierService()
    app = create_app(
        "notifier", settings.auth, ready, title=service.title, description=service.description
    )
    res = Resources("notifier", settings, pool, None, None)
    app.state.resources = res  # as the platform's composition root does
    service.routes(app, res)

    def auth(user_id: str) -> dict[str, str]:
        token = mint_token(settings.auth, user_id, f"{user_id}@example.com")
        return {"Authorization": f"Bearer {token}"}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as http:
        assert (await http.get("/emails")).status_code == 401
        listed = (await http.get("/emails?limit=10", headers=auth("bob"))).json()
        nobody = (await http.get("/emails", headers=auth("carol"))).json()
        too_many = await http.get("/emails?limit=100000", headers=auth("bob"))

    assert [e["event_id"] for e in listed] == [envelope.id]
    assert listed[0]["recipients"] == ["alice@example.com", "bob@example.com"]
    assert (listed[0]["status"], listed[0]["attempts"], listed[0]["sent_at"]) == (
        "pending",
        0,
        None,
    )
    assert nobody == []
    assert too_many.status_code == 422


async def _with_status(pool: asyncpg.Pool, event_id: str, status: str) -> Email | None:
    row = await email_row(pool, event_id)
    return row if row is not None and row.status == status else None


async def test_a_restarted_sender_retries_its_own_cut_off_sends_at_once(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    await smtp.start()
    mine, theirs = reload_failed(ALICE), reload_failed(BOB)
    mine_env, theirs_env = wrap(mine), wrap(theirs)
    await handle(pool, mine_env, mine, on_reload_finished)
    await handle(pool, theirs_env, theirs, on_reload_finished)
    # Two senders claimed one email each with a long lease, then died mid-send (kill -9).
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE emails SET attempts = 1, claimed_by = $2,"
            " next_attempt_at = now() + interval '1 hour' WHERE event_id = $1",
            mine_env.id,
            "notifier-0",
        )
        await conn.execute(
            "UPDATE emails SET attempts = 1, claimed_by = $2,"
            " next_attempt_at = now() + interval '1 hour' WHERE event_id = $1",
            theirs_env.id,
            "notifier-1",
        )

    async with running_sender(pool, smtp.port, sender_id="notifier-0"):
        row = await eventually(lambda: _with_status(pool, mine_env.id, "sent"), within=5)
        await asyncio.sleep(0.3)
        other = await email_row(pool, theirs_env.id)

    assert row.attempts == 2
    # Another replica's claim is left to its own restart or its lease.
    assert other is not None and other.status == "pending"
    assert [m["X-Loadbay-Event-Id"] for m in smtp.messages()] == [mine_env.id]


async def test_the_sender_survives_losing_its_database_connections(
    pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    await smtp.start()
    async with running_sender(pool, smtp.port, poll_interval_s=0.2):
        await asyncio.sleep(0.3)  # idle, listening
        # What a PostgreSQL restart does to the sender's connections.
        async with pool.acquire() as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        await asyncio.sleep(0.5)
        event = reload_failed(ALICE)
        envelope = wrap(event)
        await handle(pool, envelope, event, on_reload_finished)
        await eventually(lambda: _with_status(pool, envelope.id, "sent"), within=10)
    assert len(smtp.messages()) == 1
