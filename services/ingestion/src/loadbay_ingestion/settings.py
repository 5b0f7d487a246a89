"""Settings of the ingestion service (`LOADBAY_INGESTION_*`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from loadbay_platform.settings import env_list

# Dev default only: outside dev mode the service refuses to start on it (or on no key). Set
# LOADBAY_INGESTION_SECRET_KEY, or LOADBAY_INGESTION_SECRET_KEYS to rotate (newest first).
DEV_SECRET_KEY = "loadbay-dev-ingestion-secret-change-me-in-production"


class IngestionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOADBAY_INGESTION_", extra="ignore")

    # The key connection secrets (access keys) are encrypted with, at rest (Fernet, key derived
    # with HKDF-SHA256). `secret_keys` (comma-separated or a JSON list, newest first) rotates:
    # secrets are decrypted with any of them and sealed with the first; when set, it replaces
    # `secret_key`.
    secret_key: SecretStr | None = SecretStr(DEV_SECRET_KEY)
    secret_keys: Annotated[list[SecretStr], NoDecode] = []
    # Outbound endpoints (a connection's endpoint_url) allowed even though they are loopback,
    # private or otherwise not public: `host`, `host:port` or a CIDR, comma-separated or a JSON
    # list. Empty (the default): connections reach public addresses only.
    allowed_endpoints: Annotated[list[str], NoDecode] = []
    # The AWS principal loadbay reads remote buckets as, granted by generated bucket policies.
    principal_arn: str = "arn:aws:iam::000000000000:role/loadbay-ingestion"
    # Credentials of that principal, used for `bucket_policy` connections (None: the default
    # AWS credential chain). `remote_endpoint_url` points at MinIO or a test server.
    remote_endpoint_url: str | None = None
    remote_access_key_id: str | None = None
    remote_secret_access_key: SecretStr | None = None
    # Opt-in AWS regions loadbay is enabled in (comma-separated or a JSON list).
    enabled_opt_in_regions: Annotated[list[str], NoDecode] = []
    # Maximum ingestion runs copying at once, across all replicas; more runs wait `queued`.
    # Amorphic documents 90 as the best data-load limit for Redshift targets.
    max_concurrent_loads: int = Field(90, ge=1)
    # Runs one replica executes at once (within the global limit above).
    replica_max_runs: int = Field(8, ge=1)
    # Objects copied at once within one run, and the multipart part size.
    copy_concurrency: int = Field(8, ge=1, le=64)
    part_size_mib: int = Field(8, ge=5, le=64)
    # How often queued runs and due schedules are looked for.
    poll_interval_s: float = 2.0
    scheduler_interval_s: float = 5.0
    # A running run whose heartbeat is older than this was left by a crashed replica and is
    # resumed (the per-object ledger prevents copying anything twice).
    heartbeat_interval_s: float = 5.0
    stale_after_s: float = 30.0

    @field_validator("enabled_opt_in_regions", "secret_keys", "allowed_endpoints", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return env_list(value)

    def encryption_keys(self) -> list[str]:
        """The encryption keys, newest first (empty strings dropped)."""
        keys = [k.get_secret_value() for k in self.secret_keys]
        if not keys and self.secret_key is not None:
            keys = [self.secret_key.get_secret_value()]
        return [k for k in keys if k]
