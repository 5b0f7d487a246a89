"""Settings every service shares: where the broker, database, object store and mail relay are.

All come from the environment (`LOADBAY_<GROUP>__<FIELD>`, e.g. `LOADBAY_POSTGRES__URL`), so
the same code runs on the embedded stack, Apache Kafka, managed PostgreSQL, AWS S3 or MinIO and
a real mail relay. Service-specific settings live in each service's own `settings.py`.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def env_list(value: object) -> object:
    """A list setting as operators write it in an environment variable: a JSON array, or
    comma-separated words (for a field validator with `mode="before"`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    # The longest the broker holds a fetch that finds nothing. Measured against the embedded
    # broker (bench/event_latency.py --idle-ms): an event reaching an idle consumer waits up to
    # about half of this (p95 52 ms at 100, 239 ms at 500), and each consumer's idle fetching
    # costs CPU (`loadbay dev` idle: 0.22 cores at 100, 0.16 at 500). Events come back to back
    # in 2 ms whatever it is.
    fetch_max_wait_ms: int = 100
    max_retries: int = 3
    security_protocol: str = "PLAINTEXT"
    # Partitions of the topics loadbay creates: the most replicas of one service that can
    # share its work (more stand by, ready to take over). Sized for scale-out; an existing
    # topic keeps its count (raise it with the broker's tools).
    topic_partitions: int = Field(12, ge=1)
    # The longest a consumer may go without polling before the group takes its partitions
    # away. Handlers are short (long work is queued, see WorkSettings), so this is a safety net.
    max_poll_interval_ms: int = Field(30 * 60 * 1000, ge=1000)
    replication_factor: int = Field(1, ge=1)


class PostgresSettings(BaseModel):
    url: str = "postgresql://postgres@127.0.0.1:5432/loadbay"
    pool_min_size: int = 1
    pool_max_size: int = 8
    acquire_timeout_s: float = 30.0
    command_timeout_s: float = 3600.0


class S3Settings(BaseModel):
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    region: str = "us-east-1"
    lz_bucket: str = "loadbay-lz"
    dlz_bucket: str = "loadbay-dlz"


class SmtpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    sender: str = "loadbay <loadbay@localhost>"
    timeout_s: float = 10.0


# Public, for `loadbay dev` and the tests only: a service outside dev mode refuses it.
DEV_AUTH_SECRET = "loadbay-dev-secret-change-me-in-production"


class AuthSettings(BaseModel):
    """Bearer JWTs. Dev mode signs and verifies HS256 tokens with `secret`; production points
    `jwks_url` at an OIDC issuer's keys."""

    secret: SecretStr = SecretStr(DEV_AUTH_SECRET)
    algorithm: str = "HS256"
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None


class HttpSettings(BaseModel):
    """Limits every HTTP API applies before a route sees the request (LOADBAY_HTTP__<FIELD>)."""

    # JSON, URL-encoded forms and any other body that is not a multipart upload.
    max_body_bytes: int = 1024 * 1024
    # multipart/form-data: file uploads, which the reload service streams to object storage.
    max_upload_bytes: int = 5 * 1024**3
    # Arrays and objects nested deeper than this are refused before any JSON parser runs.
    max_json_depth: int = 64


class WorkSettings(BaseModel):
    """Long work (loads) runs from a table, off the event consumer's poll loop
    (`loadbay_platform.work_queue`, LOADBAY_WORK__<FIELD>)."""

    # Jobs one process runs side by side (jobs of one dataset or data product run in order).
    workers: int = Field(2, ge=1)
    # A job that was started this many times without finishing (its process died each time)
    # is failed with the reason instead of being started again.
    max_starts: int = Field(3, ge=1)
    # How late a job is seen if its notification is lost (a database restart); normally at once.
    poll_interval_s: float = Field(5.0, gt=0)


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOADBAY_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    s3: S3Settings = S3Settings()
    smtp: SmtpSettings = SmtpSettings()
    auth: AuthSettings = AuthSettings()
    http: HttpSettings = HttpSettings()
    work: WorkSettings = WorkSettings()
    log_level: str = "INFO"
    # Dev mode (`loadbay dev`, the test suite) may run on the built-in dev secrets; outside it a
    # service refuses to start on a default or missing secret (LOADBAY_DEV_MODE).
    dev_mode: bool = False
