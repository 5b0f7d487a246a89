"""The ingestion service's rows, as the repository returns them (one class per table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class Connection:
    id: str
    name: str
    connection_type: str
    description: str
    bucket: str
    access_type: str
    version: str
    region: str
    endpoint_url: str | None
    kms_key_arn: str | None
    # Fernet tokens (None for bucket_policy connections): never shown, logged or returned.
    access_key_id_enc: bytes | None = field(repr=False)
    secret_access_key_enc: bytes | None = field(repr=False)
    owner_id: str
    owner_email: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True)
class SealedSecrets:
    id: str
    access_key_id_enc: bytes = field(repr=False)
    secret_access_key_enc: bytes = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class VersionChange:
    id: int
    connection_id: str
    action: str
    from_version: str | None
    to_version: str
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True, kw_only=True)
class Binding:
    id: str
    connection_id: str
    dataset: str
    dataset_type: str
    file_type: str
    directory_path: str
    user_id: str
    user_email: str
    created_at: datetime
    dataset_id: str | None
    disabled_at: datetime | None
    disabled_reason: str | None


@dataclass(frozen=True, kw_only=True)
class Schedule:
    binding_id: str
    job_type: str
    cron: str
    next_run_at: datetime


@dataclass(frozen=True, kw_only=True)
class Run:
    id: str
    binding_id: str
    status: str
    trigger: str
    triggered_by: str
    version: str | None
    skip_lz: bool
    upload_date: int | None
    reason: str | None
    copied_count: int
    skipped_count: int
    failed_count: int
    bytes_copied: int
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    heartbeat_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class RunObject:
    """One source object of a run: copied, skipped or failed, and where it went."""

    run_id: str
    source_key: str
    name: str
    size: int
    etag: str
    storage_class: str
    status: str
    dest_bucket: str | None
    dest_key: str | None
    dest_etag: str | None
    reason: str | None
    recorded_at: datetime


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """A reload dataset as ingestion knows it from the reload service's events."""

    dataset_id: str
    domain: str
    name: str
    dataset_type: str
    file_type: str
    owner_id: str
    owner_email: str
    authorized_users: list[str]
    seen_at: datetime
    deleted_at: datetime | None
