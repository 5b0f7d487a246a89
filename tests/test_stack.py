"""The embedded stack against real servers: Tansu, PostgreSQL, moto S3 and an aiosmtpd sink.

No mocks: each test starts the servers in its own temporary state dir, talks to them over real
connections and checks that stopping leaves no process behind.
"""

from __future__ import annotations

import asyncio
import importlib.util
import mailbox
import smtplib
import socket
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import boto3
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

if importlib.util.find_spec("loadbay_cli") is None:  # outside `make install`'s venv
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli" / "src"))

from loadbay_cli.pgembed import flavor_from_env
from loadbay_cli.ports import DEV_PORTS, dev_ports, ports_in_use
from loadbay_cli.stack import EmbeddedStack, StackError, free_port, migrate_legacy_pgdata


def _processes_under(state_dir: Path) -> list[int]:
    """Live (non-zombie) processes whose command line or working dir is in ``state_dir``."""
    root = str(state_dir)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.info["pid"] == psutil.Process().pid:
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        cwd = proc.info["cwd"] or ""
        if root in cmdline or cwd == root or cwd.startswith(root + "/"):
            found.append(proc.info["pid"])
    return found


def _wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The PIDs of ``pids`` still running (zombies count as gone) after up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _kafka_roundtrip(bootstrap: str) -> bytes:
    """Produce one message to a new topic and read it back through a consumer group."""
    topic = f"stack-smoke-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello loadbay")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="stack-smoke",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        enable_auto_commit=False,
    )
    await consumer.start()  # joining the group takes ~5 s on Tansu
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=15)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert message.value is not None
    return message.value


async def _postgres_check(url: str) -> tuple[int, str]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        one = await conn.fetchval("select 1")
        database = await conn.fetchval("select current_database()")
    finally:
        await conn.close()
    return one, database


async def _sql(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_stack_serves_all_four_and_stops_clean(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    stack = EmbeddedStack(state_dir)
    started = time.monotonic()
    info = stack.start()
    try:
        assert time.monotonic() - started < 15
        assert stack.start() is info  # a second start is a no-op
        pids = stack.pids()
        assert set(pids) == {"kafka", "s3", "postgres"}

        # Kafka (Tansu): produce and consume one message through a consumer group.
        assert asyncio.run(_kafka_roundtrip(info.kafka_bootstrap_servers)) == b"hello loadbay"

        # PostgreSQL: asyncpg takes the URL as is; it points at database `loadbay`, over the
        # unix socket and on 127.0.0.1 (for any SQL client), and is the chosen major version.
        assert asyncio.run(_postgres_check(info.postgres_url)) == (1, "loadbay")
        assert asyncio.run(_postgres_check(info.postgres_tcp_url)) == (1, "loadbay")
        assert info.postgres_tcp_url.startswith("postgresql://postgres@127.0.0.1:")
        version = asyncio.run(_sql(info.postgres_url, "SHOW server_version_num"))
        assert int(str(version)) // 10000 == flavor_from_env().major

        # S3 (moto): both buckets exist; put and get an object in the landing zone.
        s3 = boto3.client(
            "s3",
            endpoint_url=info.s3_endpoint_url,
            aws_access_key_id=info.s3_access_key_id,
            aws_secret_access_key=info.s3_secret_access_key,
            region_name=info.s3_region,
        )
        names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert {"loadbay-lz", "loadbay-dlz"} <= names
        s3.put_object(Bucket=info.lz_bucket, Key="in/orders.csv", Body=b"id,qty\n1,2\n")
        body = s3.get_object(Bucket=info.lz_bucket, Key="in/orders.csv")["Body"].read()
        assert body == b"id,qty\n1,2\n"

        # SMTP: a mail sent to the sink lands in the Maildir.
        subject = f"load finished {uuid.uuid4().hex[:8]}"
        mail = EmailMessage()
        mail["From"] = "notifier@loadbay.test"
        mail["To"] = "ops@example.test"
        mail["Subject"] = subject
        mail.set_content("42 rows loaded")
        with smtplib.SMTP(info.smtp_host, info.smtp_port, timeout=10) as smtp:
            smtp.send_message(mail)
        box = mailbox.Maildir(info.maildir, create=False)
        received = [m for m in box if m["Subject"] == subject]
        assert len(received) == 1
        assert received[0]["X-RcptTo"] == "ops@example.test"
        assert "42 rows loaded" in received[0].get_payload()

        # The settings documents point at the same servers.
        env = info.service_env()
        assert env["LOADBAY_KAFKA__BOOTSTRAP_SERVERS"] == info.kafka_bootstrap_servers
        assert env["LOADBAY_POSTGRES__URL"] == info.postgres_url
        assert env["LOADBAY_SMTP__PORT"] == str(info.smtp_port)
        doc = info.to_json_dict({"reload": "http://127.0.0.1:1"}, "tok")
        assert doc["postgres"] == {"url": info.postgres_tcp_url, "socket_url": info.postgres_url}
        assert doc["s3"]["lz_bucket"] == "loadbay-lz"
        assert doc["smtp"]["port"] == info.smtp_port
        assert doc["services"] == {"reload": "http://127.0.0.1:1"} and doc["token"] == "tok"
        assert (state_dir / "stack.pids.json").exists()
    finally:
        stack.stop()

    assert _wait_gone(list(pids.values())) == []
    assert _wait_gone(_processes_under(state_dir)) == []
    assert not _port_open(info.smtp_host, info.smtp_port)
    assert not (state_dir / "stack.pids.json").exists()
    stack.stop()  # idempotent
    assert not stack.running


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _read_partition(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """Read ``count`` messages of partition 0 from the start, without a consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        deadline = time.monotonic() + 10
        while len(got) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            got += [m.value for msgs in batches.values() for m in msgs if m.value is not None]
    finally:
        await consumer.stop()
    return got


def test_persistent_kafka_survives_broker_kill(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path / "state", persistent_kafka=True)
    with stack:
        info = stack.info
        assert stack.kafka_storage == "s3://loadbay-kafka/"
        topic = "persist-check"
        values = [f"m{i}".encode() for i in range(5)]
        asyncio.run(_produce(info.kafka_bootstrap_servers, topic, values))
        old_pid = stack.pids()["kafka"]

        stack.restart_kafka(kill=True)  # kill -9, then a new broker on the same port

        assert stack.pids()["kafka"] != old_pid
        assert _wait_gone([old_pid]) == []
        assert asyncio.run(_read_partition(info.kafka_bootstrap_servers, topic, 5)) == values


def test_start_failure_names_the_server_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken-tansu"
    broken.write_text("#!/bin/sh\necho 'tansu: cannot open storage, giving up' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(broken))
    state_dir = tmp_path / "state"

    with pytest.raises(StackError) as excinfo:
        EmbeddedStack(state_dir).start()

    assert excinfo.value.service == "kafka"
    assert "cannot open storage, giving up" in str(excinfo.value)
    assert _wait_gone(_processes_under(state_dir)) == []


def test_fixed_ports_are_used_and_postgres_survives_kill_9(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("kafka", "postgres", "s3", "smtp")}
    with EmbeddedStack(tmp_path / "state", ports=ports) as stack:
        info = stack.info
        assert info.kafka_bootstrap_servers == f"127.0.0.1:{ports['kafka']}"
        assert info.s3_endpoint_url == f"http://127.0.0.1:{ports['s3']}"
        assert info.smtp_port == ports["smtp"]
        assert (
            info.postgres_tcp_url == f"postgresql://postgres@127.0.0.1:{ports['postgres']}/loadbay"
        )
        asyncio.run(_sql(info.postgres_url, "CREATE TABLE kept AS SELECT 42 AS answer"))
        old = psutil.Process(stack.pids()["postgres"])
        backends = old.children(recursive=True)
        assert backends  # checkpointer, walwriter ...

        stack.restart_postgres(kill=True)  # kill -9 of the postmaster and its backends

        assert _wait_gone([old.pid, *(b.pid for b in backends)]) == []
        assert stack.pids()["postgres"] != old.pid
        # Crash recovery kept the committed table; same port, same socket.
        assert asyncio.run(_sql(info.postgres_tcp_url, "SELECT answer FROM kept")) == 42
        assert asyncio.run(_sql(info.postgres_url, "SELECT answer FROM kept")) == 42


def test_a_port_in_use_fails_the_start_naming_the_server(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackError) as excinfo:
            EmbeddedStack(tmp_path / "state", ports={"postgres": port}).start()
    assert excinfo.value.service == "postgres"
    assert f"port {port}" in str(excinfo.value) and "in use" in str(excinfo.value)
    assert _wait_gone(_processes_under(tmp_path / "state")) == []


def test_dev_ports_are_stable_and_each_can_be_moved() -> None:
    assert dev_ports({}) == DEV_PORTS
    assert len(set(DEV_PORTS.values())) == len(DEV_PORTS)
    moved = dev_ports({"LOADBAY_DEV_POSTGRES_PORT": "25432", "LOADBAY_DEV_RELOAD_PORT": "0"})
    assert moved["postgres"] == 25432 and moved["reload"] == 0
    assert moved["kafka"] == DEV_PORTS["kafka"]
    with pytest.raises(ValueError, match="LOADBAY_DEV_S3_PORT"):
        dev_ports({"LOADBAY_DEV_S3_PORT": "nine"})
    with pytest.raises(ValueError, match="LOADBAY_DEV_SMTP_PORT"):
        dev_ports({"LOADBAY_DEV_SMTP_PORT": "70000"})
    with pytest.raises(ValueError, match="the same"):
        dev_ports({"LOADBAY_DEV_KAFKA_PORT": str(DEV_PORTS["postgres"])})


def test_ports_in_use_finds_a_listener_and_passes_a_free_port() -> None:
    free = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        assert ports_in_use({"reload": busy, "loader": free, "notifier": 0}) == {"reload": busy}


def test_legacy_pgdata_moves_to_its_major_version(tmp_path: Path) -> None:
    legacy = tmp_path / "pgdata"
    legacy.mkdir()
    (legacy / "PG_VERSION").write_text("16\n")
    (legacy / "base").mkdir()
    assert migrate_legacy_pgdata(tmp_path) == tmp_path / "pgdata-16"
    assert (tmp_path / "pgdata-16" / "base").is_dir() and not legacy.exists()
    assert migrate_legacy_pgdata(tmp_path) is None  # nothing left to move
