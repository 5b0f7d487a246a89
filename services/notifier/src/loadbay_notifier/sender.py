"""The sender loop: delivers recorded emails over SMTP, with retries, once per email.

Each round claims due emails (`FOR UPDATE SKIP LOCKED`, so replicas share the work), sends
them outside any transaction, and records the outcome. A claim makes the email not due for a
lease, and a send is cut off at half the lease: an email is never sent by two senders at once,
and one whose sender died mid-send is taken over when its lease runs out. The only duplicate
left is a crash between the relay's acceptance and the `sent` update; the Message-ID, derived
from the event id, lets a mail client (or a person) recognise it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import aiosmtplib
import asyncpg

from loadbay_notifier import repository
from loadbay_notifier.metrics import EMAILS_FAILED, EMAILS_PENDING, EMAILS_SENT, SEND_ATTEMPTS
from loadbay_notifier.rows import ClaimedEmail
from loadbay_notifier.settings import NotifierSettings
from loadbay_platform import logs
from loadbay_platform.errors import TerminalError
from loadbay_platform.outages import DATABASE_ERRORS
from loadbay_platform.retries import logged, retrying, scheduled_delay
from loadbay_platform.settings import SmtpSettings
from loadbay_platform.waker import Waker

log = logging.getLogger(__name__)

_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")


class EmailSender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        smtp: SmtpSettings,
        settings: NotifierSettings,
        *,
        acquire_timeout_s: float = 30.0,
    ) -> None:
        self.pool = pool
        self.smtp = smtp
        self.settings = settings
        self.acquire_timeout_s = acquire_timeout_s
        _, address = parseaddr(smtp.sender)
        self._envelope_sender = address or smtp.sender
        self._msgid_domain = address.rpartition("@")[2] or "loadbay"

    async def run(self) -> None:
        """Send due emails until cancelled; never ends on its own."""
        waker = Waker(self.pool, repository.NEW_EMAIL_CHANNEL)
        reclaimed = False
        try:
            await waker.listen()  # before the first look: an email queued meanwhile wakes it
            while True:
                try:
                    if not reclaimed:
                        await self._reclaim_own_claims()
                        reclaimed = True
                    await self.send_due()
                    delay = await self._seconds_until_next_due()
                except DATABASE_ERRORS as exc:
                    log.warning("email sender: database unavailable, will retry: %s", exc)
                    delay = self.settings.poll_interval_s
                except Exception:  # a bug must not stop every email: log it and go on
                    log.exception("email sender: unexpected error, will retry")
                    delay = self.settings.poll_interval_s
                await waker.wait(delay)
        finally:
            await waker.close()

    async def send_due(self) -> int:
        """Send every email due now, a batch at a time; returns how many were attempted."""
        attempted = 0
        while True:
            async with self.pool.acquire(timeout=self.acquire_timeout_s) as conn:
                claimed = await repository.claim_due_emails(
                    conn, self.settings.batch_size, self.settings.claim_lease_s, self.sender_id
                )
            if not claimed:
                break
            outcomes = await asyncio.gather(
                *(self._attempt(row) for row in claimed), return_exceptions=True
            )
            attempted += len(claimed)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        async with self.pool.acquire(timeout=self.acquire_timeout_s) as conn:
            EMAILS_PENDING.set(await repository.count_pending(conn))
        return attempted

    @property
    def sender_id(self) -> str:
        return self.settings.sender_id

    async def _reclaim_own_claims(self) -> None:
        async with self.pool.acquire(timeout=self.acquire_timeout_s) as conn:
            count = await repository.reclaim_own_claims(conn, self.sender_id)
        if count:
            log.warning(
                "email sender %s: retrying %d sends cut off by a restart", self.sender_id, count
            )

    async def _attempt(self, row: ClaimedEmail) -> None:
        token = logs.correlation_id.set(row.correlation_id)
        try:
            try:
                note = await self._send(row)
            except TerminalError as exc:
                await self._give_up(row, str(exc))
            except Exception as exc:  # the relay, the network or a bug: all worth a retry
                await self._retry_or_give_up(row, exc)
            else:
                await self._write_outcome(repository.mark_sent, row.id, note)
                SEND_ATTEMPTS.labels("sent").inc()
                EMAILS_SENT.labels(row.event_type).inc()
                log.info(
                    "sent email %s for event %s to %d recipients (attempt %d)",
                    row.id,
                    row.event_id,
                    len(row.recipients),
                    row.attempts,
                )
        finally:
            logs.correlation_id.reset(token)

    async def _send(self, row: ClaimedEmail) -> str | None:
        """Hand the email to the relay; returns a note on recipients it refused, if any."""
        try:
            message = self.build_message(row)
        except (ValueError, TypeError) as exc:
            raise TerminalError(f"cannot build the message: {exc}") from exc
        smtp = self.smtp
        try:
            refused, _ = await asyncio.wait_for(
                aiosmtplib.send(
                    message,
                    sender=self._envelope_sender,
                    recipients=list(row.recipients),
                    hostname=smtp.host,
                    port=smtp.port,
                    username=smtp.username,
                    password=smtp.password.get_secret_value() if smtp.password else None,
                    start_tls=smtp.starttls,
                    timeout=smtp.timeout_s,
                ),
                # aiosmtplib's timeout bounds each step; this bounds the whole send, so it
                # ends well inside the claim's lease.
                self.settings.claim_lease_s / 2,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(_permanent(r.code) for r in exc.recipients):
                raise TerminalError(f"every recipient refused: {_describe(exc)}") from exc
            raise
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            if _permanent(exc.code):
                raise TerminalError(f"refused by the mail relay: {_describe(exc)}") from exc
            raise
        if not refused:
            return None
        # Resending to the others would duplicate their copy: record who was left out.
        note = "refused recipients: " + "; ".join(
            f"{address} ({response.code} {response.message})"
            for address, response in refused.items()
        )
        log.warning("email %s: %s", row.id, note)
        return note

    def build_message(self, row: ClaimedEmail) -> EmailMessage:
        """One message to all recipients, multipart/alternative (text, then HTML)."""
        message = EmailMessage()
        message["From"] = self.smtp.sender
        message["To"] = ", ".join(row.recipients)
        message["Subject"] = row.subject
        message["Date"] = format_datetime(row.created_at)
        message["Message-ID"] = message_id(row.event_id, self._msgid_domain)
        message["X-Loadbay-Event-Id"] = row.event_id
        message["X-Loadbay-Correlation-Id"] = row.correlation_id
        message["X-Loadbay-Event-Type"] = row.event_type
        # RFC 3834: a machine wrote this; vacation responders should stay quiet.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(row.body_text)
        message.add_alternative(row.body_html, subtype="html")
        return message

    async def _retry_or_give_up(self, row: ClaimedEmail, exc: Exception) -> None:
        error = _describe(exc)
        attempts = row.attempts
        if attempts >= self.settings.max_attempts:
            await self._give_up(row, f"{error} (gave up after {attempts} attempts)")
            return
        delay = self.retry_delay(attempts)
        await self._write_outcome(repository.schedule_retry, row.id, error, delay)
        SEND_ATTEMPTS.labels("retried").inc()
        log.warning(
            "email %s for event %s not sent (attempt %d), retrying in %.1f s: %s",
            row.id,
            row.event_id,
            attempts,
            delay,
            error,
        )

    async def _give_up(self, row: ClaimedEmail, error: str) -> None:
        await self._write_outcome(repository.mark_failed, row.id, error)
        SEND_ATTEMPTS.labels("failed").inc()
        EMAILS_FAILED.labels(row.event_type).inc()
        log.error(
            "gave up on email %s for event %s to %s: %s",
            row.id,
            row.event_id,
            ", ".join(row.recipients),
            error,
        )

    async def _write_outcome(
        self, write: Callable[..., Awaitable[None]], email_id: int, *args: Any
    ) -> None:
        # Losing this write after a send means sending again once the lease runs out, so a
        # database blip is waited out, within a quarter of the lease (the send had half).
        async for attempt in retrying(
            logged(_database_error, log, lambda _: f"email {email_id}: cannot record the outcome"),
            initial_s=0.2,
            max_s=5.0,
            timeout_s=self.settings.claim_lease_s / 4,
        ):
            with attempt:
                async with self.pool.acquire(timeout=self.acquire_timeout_s) as conn:
                    await write(conn, email_id, *args)

    def retry_delay(self, attempts: int) -> float:
        """Wait after the `attempts`-th failed attempt: base, doubling, capped, with jitter (a
        relay back after an outage is not sent every waiting email at once)."""
        s = self.settings
        return scheduled_delay(s.retry_base_s, s.retry_max_s, attempts)

    async def _seconds_until_next_due(self) -> float:
        async with self.pool.acquire(timeout=self.acquire_timeout_s) as conn:
            due_in = await repository.seconds_until_next_due(conn)
        poll = self.settings.poll_interval_s
        return poll if due_in is None else min(due_in, poll)


def _database_error(exc: Exception) -> bool:
    return isinstance(exc, DATABASE_ERRORS)


def message_id(event_id: str, domain: str) -> str:
    """The Message-ID of the email for `event_id`: the same on every attempt and replica."""
    left = event_id if _DOT_ATOM.match(event_id) and ".." not in event_id else None
    if left is None or left.startswith(".") or left.endswith("."):
        left = hashlib.sha256(event_id.encode()).hexdigest()[:40]
    return f"<{left}.notifier@{domain}>"


def _permanent(code: int) -> bool:
    return 500 <= code < 600


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:2000]
