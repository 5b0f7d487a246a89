"""All SQL of the notifier service. Functions take a connection and never commit: the caller
owns the transaction (a handler records an email in the consumer's transaction, so the email
and the inbox row commit together)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from loadbay_notifier.rows import ClaimedEmail, Email
from loadbay_platform.rows import row_or_none, rows

# Sent (on commit) when an email is recorded, so the sender wakes at once.
NEW_EMAIL_CHANNEL = "loadbay_notifier_emails"

INSERT_EMAIL = """
INSERT INTO emails (event_id, event_type, correlation_id, recipients, subject, body_text,
                    body_html)
VALUES ($1, $2, $3, $4::text[], $5, $6, $7)
ON CONFLICT (event_id) DO NOTHING
RETURNING id
"""
NOTIFY_NEW_EMAIL = "SELECT pg_notify($1, '')"
# One statement, so the row locks last only as long as it does: the send itself happens
# outside any transaction, protected by the lease written into next_attempt_at.
CLAIM_DUE = """
WITH due AS (
    SELECT id FROM emails
     WHERE status = 'pending' AND next_attempt_at <= now()
     ORDER BY next_attempt_at, id
     LIMIT $1
       FOR UPDATE SKIP LOCKED
)
UPDATE emails e
   SET attempts = e.attempts + 1,
       next_attempt_at = now() + make_interval(secs => $2),
       claimed_by = $3
  FROM due
 WHERE e.id = due.id
RETURNING e.id, e.event_id, e.event_type, e.correlation_id, e.recipients, e.subject,
          e.body_text, e.body_html, e.attempts, e.created_at
"""
# A sender starting afresh under the same identity died mid-send: its claims are due again.
RECLAIM_OWN = """
UPDATE emails SET next_attempt_at = now(), claimed_by = NULL
 WHERE status = 'pending' AND claimed_by = $1 AND next_attempt_at > now()
"""
MARK_SENT = """
UPDATE emails SET status = 'sent', sent_at = now(), last_error = $2
 WHERE id = $1 AND status = 'pending'
"""
SCHEDULE_RETRY = """
UPDATE emails SET last_error = $2, next_attempt_at = now() + make_interval(secs => $3)
 WHERE id = $1 AND status = 'pending'
"""
MARK_FAILED = """
UPDATE emails SET status = 'failed', last_error = $2
 WHERE id = $1 AND status = 'pending'
"""
COUNT_PENDING = "SELECT count(*) FROM emails WHERE status = 'pending'"
# No row (not a 0) when nothing is pending: greatest() ignores the NULL of an empty min(), and
# a 0 had the sender query without pause while idle.
SECONDS_UNTIL_NEXT_DUE = """
SELECT greatest(extract(epoch FROM min(next_attempt_at) - clock_timestamp()), 0)::float8
  FROM emails WHERE status = 'pending' HAVING count(*) > 0
"""
EMAIL_COLUMNS = """
SELECT id, event_id, event_type, correlation_id, recipients, subject, status, attempts,
       last_error, next_attempt_at, sent_at, created_at
  FROM emails
"""
LIST_EMAILS_TO = EMAIL_COLUMNS + " WHERE recipients @> ARRAY[$1::text] ORDER BY id DESC LIMIT $2"
GET_EMAIL_BY_EVENT = EMAIL_COLUMNS + " WHERE event_id = $1"


async def insert_email(
    conn: asyncpg.Connection,
    *,
    event_id: str,
    event_type: str,
    correlation_id: str,
    recipients: Sequence[str],
    subject: str,
    body_text: str,
    body_html: str,
) -> int | None:
    """Record an email to send; None when the event already has one."""
    return await conn.fetchval(
        INSERT_EMAIL,
        event_id,
        event_type,
        correlation_id,
        list(recipients),
        subject,
        body_text,
        body_html,
    )


async def notify_new_email(conn: asyncpg.Connection) -> None:
    await conn.execute(NOTIFY_NEW_EMAIL, NEW_EMAIL_CHANNEL)


async def claim_due_emails(
    conn: asyncpg.Connection, limit: int, lease_s: float, sender_id: str
) -> list[ClaimedEmail]:
    """Take up to `limit` due emails for one attempt each: counts the attempt and makes the
    email not due again for `lease_s`, so other senders skip it meanwhile."""
    return rows(ClaimedEmail, await conn.fetch(CLAIM_DUE, limit, lease_s, sender_id))


async def reclaim_own_claims(conn: asyncpg.Connection, sender_id: str) -> int:
    """Make the emails a previous life of `sender_id` had claimed due now; returns how many."""
    status = await conn.execute(RECLAIM_OWN, sender_id)
    return int(status.split()[-1])


async def mark_sent(conn: asyncpg.Connection, email_id: int, note: str | None = None) -> None:
    await conn.execute(MARK_SENT, email_id, note)


async def schedule_retry(
    conn: asyncpg.Connection, email_id: int, error: str, delay_s: float
) -> None:
    await conn.execute(SCHEDULE_RETRY, email_id, error, delay_s)


async def mark_failed(conn: asyncpg.Connection, email_id: int, error: str) -> None:
    await conn.execute(MARK_FAILED, email_id, error)


async def count_pending(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(COUNT_PENDING)


async def seconds_until_next_due(conn: asyncpg.Connection) -> float | None:
    """How long until the earliest pending email is due (0 if one is due now); None if no
    email is pending."""
    return await conn.fetchval(SECONDS_UNTIL_NEXT_DUE)


async def list_emails_to(conn: asyncpg.Connection, address: str, limit: int) -> list[Email]:
    """The most recent emails addressed to `address`, newest first."""
    return rows(Email, await conn.fetch(LIST_EMAILS_TO, address, limit))


async def get_email_by_event(conn: asyncpg.Connection, event_id: str) -> Email | None:
    return row_or_none(Email, await conn.fetchrow(GET_EMAIL_BY_EVENT, event_id))
