"""Fault scenarios and their oracle, for reloads under crashes and outages.

Each iteration reloads one dataset with new rows (two files and `_SUCCESS`), injects one fault
at a random moment of the run, and then checks:
- the execution reaches a terminal state (within `settle_s`);
- the rows are exactly the new ones if it succeeded, exactly the old ones if it failed;
- a reader polling the table meanwhile never saw a mix of two runs, nor a partial run;
- exactly one email for the run reaches its user.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mailbox
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tests.conftest import User
from tests.faults.lab import FaultLab

Fault = Callable[[FaultLab], Awaitable[None]]

COLUMNS = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "tag", "type": "text"},
    {"name": "amount", "type": "numeric"},
]


async def _poison_and_duplicates(lab: FaultLab) -> None:
    for topic in ("loadbay.file.landed", "loadbay.reload.requested", "loadbay.reload.loaded"):
        await lab.publish_raw(topic, b"\x00{not an event")
        await lab.publish_raw(topic, b'{"specversion": "1.0", "type": "made.up", "id": "x"}')


FAULTS: dict[str, Fault] = {
    "loader-kill": lambda lab: lab.kill_service("loader"),
    "reload-kill": lambda lab: lab.kill_service("reload"),
    "notifier-kill": lambda lab: lab.kill_service("notifier"),
    "postgres-kill": lambda lab: lab.kill_postgres(),
    "broker-kill": lambda lab: lab.kill_broker(),
    "s3-outage": lambda lab: lab.cut_off(_proxy(lab, "s3"), 3.0),
    "smtp-outage": lambda lab: lab.cut_off(_proxy(lab, "smtp"), 5.0),
    "poison-and-duplicates": _poison_and_duplicates,
}


def _proxy(lab: FaultLab, which: str) -> Any:
    proxy = lab.s3_proxy if which == "s3" else lab.smtp_proxy
    assert proxy is not None
    return proxy


@dataclass
class Outcome:
    scenario: str
    iteration: int
    status: str
    seconds_to_terminal: float
    problems: list[str] = field(default_factory=list)
    resent: int = 0  # copies of the run's email with its Message-ID (see _check_one_email)


@dataclass
class ScenarioRun:
    """One dataset reloaded again and again under one kind of fault."""

    lab: FaultLab
    scenario: str
    rows: int
    settle_s: float = 180.0
    user: User | None = None
    domain: str = "faults"
    name: str = ""
    previous_tag: str | None = None
    email_within_s: float = 120.0
    message_ids_seen: set[str] = field(default_factory=set)
    execution_ids: list[str] = field(default_factory=list)  # of earlier runs
    resent: int = 0  # copies of an email with the same Message-ID, so far

    async def setup(self) -> None:
        await self.lab.wait_ready()  # the previous scenario may have just restarted one
        self.user = self.lab.user("faults")
        self.name = (
            "r_"
            + hashlib.sha1(self.scenario.encode()).hexdigest()[:8]
            + "_"
            + (self.user.user_id.rsplit("_", 1)[1])
        )
        body = {"domain": self.domain, "name": self.name, "columns": COLUMNS}
        response = await self.lab.http.post(
            self.lab.url("reload") + "/datasets", json=body, headers=self.user.headers
        )
        assert response.status_code == 201, response.text

    async def iteration(self, i: int, rng: random.Random) -> Outcome:
        assert self.user is not None
        tag = f"{self.scenario}-{i}"
        half = self.rows // 2
        files = {
            "a.csv": _csv(range(0, half), tag),
            "b.csv": _csv(range(half, self.rows), tag),
        }
        executions_before = len(await self._executions())
        prefix = (
            f"{self.domain}/{self.name}/upload_date={1_700_000_000 + i}/{self.user.user_id}/csv/"
        )
        s3 = self.lab.s3()
        assert self.lab.info is not None
        bucket = self.lab.info.lz_bucket
        reader = asyncio.create_task(self._read_meanwhile(tag))
        started = time.monotonic()
        fault_task: asyncio.Task[None] | None = None
        problems: list[str] = []
        try:
            for file_name, body in [*files.items(), ("_SUCCESS", b"")]:
                put = await asyncio.to_thread(
                    s3.put_object, Bucket=bucket, Key=prefix + file_name, Body=body
                )
                etag = put["ETag"].strip('"')
                await self.lab.announce(bucket, prefix + file_name, len(body), etag)
                if self.scenario == "poison-and-duplicates":  # every announcement twice
                    await self.lab.announce(bucket, prefix + file_name, len(body), etag)
            delay = rng.uniform(0.0, 2.0)
            fault_task = asyncio.create_task(_after(delay, FAULTS[self.scenario](self.lab)))
            execution = await self._terminal(executions_before, started)
            await fault_task
        finally:
            if fault_task is not None and not fault_task.done():
                fault_task.cancel()
                with contextlib.suppress(BaseException):
                    await fault_task
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                mixes = await reader
        elapsed = time.monotonic() - started
        if execution is None:
            problems.extend(await self._check_services_alive())
            problems.append(f"no terminal execution within {self.settle_s:.0f}s")
            return Outcome(self.scenario, i, "stuck", elapsed, problems)
        status = execution["status"]
        problems.extend(await self._check_services_alive())
        problems.extend(mixes if isinstance(mixes, list) else [])
        problems.extend(await self._check_rows(status, tag))
        resent_before = self.resent
        problems.extend(await self._check_one_email(execution["id"]))
        if status == "succeeded":
            self.previous_tag = tag
        return Outcome(self.scenario, i, status, elapsed, problems, self.resent - resent_before)

    async def _check_services_alive(self) -> list[str]:
        """No process may exit on its own, whatever the fault: report (and restart) any."""
        assert self.lab.services is not None
        problems = []
        for name, proc in list(self.lab.services.procs.items()):
            if proc.poll() is not None:
                problems.append(f"the {name} service exited with status {proc.returncode}")
                await self.lab.kill_service(name)  # start it again for the next iterations
        return problems

    async def _executions(self) -> list[dict[str, Any]]:
        assert self.user is not None
        for _ in range(600):  # the reload service may be restarting: wait for it
            with contextlib.suppress(Exception):
                response = await self.lab.http.get(
                    f"{self.lab.url('reload')}/datasets/{self.domain}/{self.name}/executions",
                    headers=self.user.headers,
                )
                if response.status_code == 200:
                    return response.json()  # type: ignore[no-any-return]
            await asyncio.sleep(0.2)
        raise AssertionError("the reload service did not answer for 2 minutes")

    async def _terminal(self, before: int, started: float) -> dict[str, Any] | None:
        while time.monotonic() - started < self.settle_s:
            found = await self._executions()
            if len(found) > before and found[0]["status"] not in ("running", "pending"):
                return found[0]
            await asyncio.sleep(0.2)
        return None

    async def _check_rows(self, status: str, tag: str) -> list[str]:
        expected_tag = tag if status == "succeeded" else self.previous_tag
        expected = self.rows if expected_tag else 0
        conn = await _connect(self.lab)
        try:
            rows = await conn.fetch(
                f'SELECT tag, count(*) AS n, count(DISTINCT id) AS ids FROM "{self.domain}".'
                f'"{self.name}" GROUP BY tag'
            )
        finally:
            await conn.close()
        seen = {r["tag"]: (r["n"], r["ids"]) for r in rows}
        want = {expected_tag: (expected, expected)} if expected_tag else {}
        if seen != want:
            return [f"{status}: rows by tag {seen}, expected {want}"]
        return []

    async def _check_one_email(self, execution_id: str) -> list[str]:
        """Exactly one email about this run, and no email about anything else.

        Emails are tied to their run by the execution id in their body. A kill -9 of the
        notifier between the relay's acceptance and its own commit sends the same message
        again (SMTP has no transaction to share): that copy carries the same Message-ID, so
        mail systems show one email; it is counted as `resent`, not as a problem. A second
        Message-ID about the run is a problem, and so is a new email about no run of ours."""
        deadline = time.monotonic() + self.email_within_s
        while time.monotonic() < deadline:
            if any(execution_id in body for _, _, body in self._emails()):
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)  # room for a duplicate to arrive
        emails = self._emails()  # one reading for both checks: mail may still arrive meanwhile
        about = [message_id for message_id, _, body in emails if execution_id in body]
        ids = set(about)
        self.resent += len(about) - len(ids)
        problems = []
        if len(ids) != 1:
            problems.append(
                f"{len(ids)} emails for execution {execution_id} within"
                f" {self.email_within_s:.0f}s, expected exactly 1"
            )
        others = {
            message_id: (subject, body)
            for message_id, subject, body in emails
            if message_id not in self.message_ids_seen and execution_id not in body
        }
        for subject, body in others.values():
            earlier = [e for e in self.execution_ids if e in body]
            which = f"late, about execution {earlier[0]}" if earlier else "about no run of ours"
            problems.append(f"an email {which}: {subject}")
        self.message_ids_seen |= ids | set(others)
        self.execution_ids.append(execution_id)
        return problems

    def _emails(self) -> list[tuple[str, str, str]]:
        """(Message-ID, subject, text) of every email to the scenario's user."""
        assert self.user is not None and self.lab.info is not None
        box = mailbox.Maildir(self.lab.info.maildir, create=False)
        found = []
        for message in box:
            if self.user.email not in (message.get("To") or ""):
                continue
            texts = [
                payload.decode("utf-8", "replace")
                for part in message.walk()
                if isinstance(payload := part.get_payload(decode=True), bytes)
            ]
            found.append(
                (str(message.get("Message-ID")), str(message.get("Subject")), "\n".join(texts))
            )
        return found

    async def _read_meanwhile(self, tag: str) -> list[str]:
        """Poll the table as a reader would; report any moment it showed a mix or a part."""
        problems: list[str] = []
        conn: asyncpg.Connection | None = None
        try:
            while True:
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.lab.info.postgres_url)  # type: ignore[union-attr]
                    rows = await conn.fetch(
                        f'SELECT tag, count(*) AS n FROM "{self.domain}"."{self.name}" GROUP BY tag'
                    )
                    view = {r["tag"]: r["n"] for r in rows}
                    if len(view) > 1 or any(n != self.rows for n in view.values()):
                        problems.append(f"a reader saw {view}")
                except (
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ):
                    if conn is not None:
                        conn.terminate()
                    conn = None  # PostgreSQL is restarting
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            return problems[:3]
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()


async def _connect(lab: FaultLab) -> asyncpg.Connection:
    for _ in range(300):
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            return await lab.connect()
        await asyncio.sleep(0.2)
    raise AssertionError("PostgreSQL did not come back within a minute")


async def _after(delay: float, fault: Awaitable[None]) -> None:
    await asyncio.sleep(delay)
    await fault


def _csv(ids: range, tag: str) -> bytes:
    lines = ["id,tag,amount"] + [f"{i},{tag},{i % 1000}.25" for i in ids]
    return ("\n".join(lines) + "\n").encode()


def summarize(outcomes: list[Outcome]) -> list[str]:
    """One line per scenario: iterations, statuses, problems, time to a terminal state."""
    lines = []
    for scenario in dict.fromkeys(o.scenario for o in outcomes):
        mine = [o for o in outcomes if o.scenario == scenario]
        times = sorted(o.seconds_to_terminal for o in mine)
        statuses: dict[str, int] = {}
        for o in mine:
            statuses[o.status] = statuses.get(o.status, 0) + 1
        bad = sum(1 for o in mine if o.problems)
        resent = sum(o.resent for o in mine)
        lines.append(
            f"{scenario:<22} n={len(mine):<4} {statuses}  with problems: {bad:<3}"
            f" emails resent (same Message-ID): {resent:<2}"
            f" to terminal: median {statistics.median(times):.1f}s, max {times[-1]:.1f}s"
        )
    return lines
