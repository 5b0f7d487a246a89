"""S3 connections: who may see and change them, their secrets, versions and policies.

A connection is visible to its owner and its authorized users (anyone else gets 404, as if it
did not exist); only the owner changes or deletes it. Access keys are sealed with `SecretBox`
before they reach the database and are never part of a view.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from loadbay_ingestion import regions, repository
from loadbay_ingestion.crypto import SecretBox
from loadbay_ingestion.endpoints import EndpointPolicy, check_endpoint
from loadbay_ingestion.rows import Connection
from loadbay_platform.auth import Principal
from loadbay_platform.errors import ApiError, Conflict, Forbidden, NotFound

VERSIONS = ("1.6", "1.7", "1.8")
Version = Literal["1.6", "1.7", "1.8"]
AccessType = Literal["access_keys", "bucket_policy"]
log = logging.getLogger(__name__)
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")
    connection_type: Literal["s3"] = "s3"
    description: str = Field("", max_length=2000)
    authorized_users: list[str] = []
    bucket: str = Field(pattern=BUCKET_PATTERN)
    access_type: AccessType
    version: Version = "1.8"
    region: str
    # For S3-compatible stores (MinIO) and tests; None means AWS S3 in `region`. Public
    # addresses only, unless allowed by LOADBAY_INGESTION_ALLOWED_ENDPOINTS (endpoints.py).
    endpoint_url: str | None = Field(None, max_length=2048)
    # Set when the bucket is encrypted with a KMS key: a key policy is generated too.
    kms_key_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:kms:")
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return regions.check_known(value)


class ConnectionUpdate(BaseModel):
    """Fields to change; the name, type, access type and version are not changed here
    (versions move with upgrade and downgrade)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=2000)
    authorized_users: list[str] | None = None
    bucket: str | None = Field(None, pattern=BUCKET_PATTERN)
    region: str | None = None
    endpoint_url: str | None = Field(None, max_length=2048)
    kms_key_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:kms:")
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else regions.check_known(value)


class VersionChange(BaseModel):
    version: Version


def _sealed_keys(
    box: SecretBox, access_type: str, key_id: SecretStr | None, secret: SecretStr | None
) -> tuple[bytes | None, bytes | None]:
    if access_type == "bucket_policy":
        if key_id is not None or secret is not None:
            raise ApiError(
                "a bucket_policy connection takes no access keys: loadbay reads the bucket as"
                " its own principal, granted by the generated bucket policy"
            )
        return None, None
    if key_id is None or secret is None:
        raise ApiError("an access_keys connection needs access_key_id and secret_access_key")
    return box.seal(key_id.get_secret_value()), box.seal(secret.get_secret_value())


async def reseal_secrets(pool: asyncpg.Pool, box: SecretBox) -> int:
    """Seal stored access keys still sealed with an older key with the newest one (after a
    key rotation); idempotent, run at start-up. Returns how many connections were resealed."""
    resealed = 0
    async with pool.acquire() as conn:
        rows = await repository.sealed_secrets(conn)
        for r in rows:
            sealed = (r.access_key_id_enc, r.secret_access_key_enc)
            if all(box.is_current(token) for token in sealed):
                continue
            try:
                key_id = box.reseal(r.access_key_id_enc)
                secret = box.reseal(r.secret_access_key_enc)
            except ValueError:
                log.warning("connection %s: access keys sealed with an unknown key", r.id)
                continue
            await repository.reseal(conn, r.id, r.secret_access_key_enc, key_id, secret)
            resealed += 1
    if resealed:
        log.info("resealed the access keys of %d connection(s) with the newest key", resealed)
    return resealed


async def create_connection(
    conn: asyncpg.Connection, box: SecretBox, body: ConnectionCreate, principal: Principal,
    policy: EndpointPolicy,
) -> Connection:  # fmt: skip
    if body.endpoint_url is not None:
        await check_endpoint(body.endpoint_url, policy)
    key_enc, secret_enc = _sealed_keys(
        box, body.access_type, body.access_key_id, body.secret_access_key
    )
    connection_id = str(uuid.uuid4())
    created = await repository.insert_connection(
        conn,
        id=connection_id,
        name=body.name,
        description=body.description,
        bucket=body.bucket,
        access_type=body.access_type,
        version=body.version,
        region=body.region,
        endpoint_url=body.endpoint_url,
        kms_key_arn=body.kms_key_arn,
        access_key_id_enc=key_enc,
        secret_access_key_enc=secret_enc,
        owner_id=principal.user_id,
        owner_email=principal.email,
    )
    if not created:
        raise Conflict(
            f"you have a connection named {body.name!r} already; names are unique per owner"
        )
    users = sorted({*body.authorized_users} - {principal.user_id})
    await repository.set_connection_users(conn, connection_id, users)
    await repository.insert_version_change(
        conn, connection_id, "create", None, body.version, principal.user_id
    )
    found = await repository.connection_by_id(conn, connection_id)
    assert found is not None
    return found


async def connection_for(conn: asyncpg.Connection, name: str, principal: Principal) -> Connection:
    """The connection if the principal may use it; NotFound otherwise (no existence leak)."""
    found = await repository.visible_connection(conn, name, principal.user_id)
    if found is None:
        raise NotFound(f"no connection {name!r}")
    return found


async def owned_connection(conn: asyncpg.Connection, name: str, principal: Principal) -> Connection:
    """The connection, locked, if the principal owns it."""
    found = await connection_for(conn, name, principal)
    if found.owner_id != principal.user_id:
        raise Forbidden(f"only the owner of connection {name!r} ({found.owner_id}) changes it")
    locked = await repository.lock_connection(conn, found.id)
    assert locked is not None
    return locked


async def update_connection(
    conn: asyncpg.Connection, box: SecretBox, current: Connection, body: ConnectionUpdate,
    principal: Principal, policy: EndpointPolicy,
) -> None:  # fmt: skip
    changes = body.model_dump(exclude_unset=True)
    if changes.get("endpoint_url") is not None:
        await check_endpoint(changes["endpoint_url"], policy)
    key_enc, secret_enc = current.access_key_id_enc, current.secret_access_key_enc
    if "access_key_id" in changes or "secret_access_key" in changes:
        key_enc, secret_enc = _sealed_keys(
            box, current.access_type, body.access_key_id, body.secret_access_key
        )
    await repository.update_connection(
        conn,
        current.id,
        description=changes.get("description", current.description) or "",
        bucket=changes.get("bucket") or current.bucket,
        region=changes.get("region") or current.region,
        endpoint_url=changes.get("endpoint_url", current.endpoint_url),
        kms_key_arn=changes.get("kms_key_arn", current.kms_key_arn),
        access_key_id_enc=key_enc,
        secret_access_key_enc=secret_enc,
    )
    if body.authorized_users is not None:
        users = sorted({*body.authorized_users} - {principal.user_id})
        await repository.set_connection_users(conn, current.id, users)


async def delete_connection(conn: asyncpg.Connection, current: Connection) -> None:
    # Disabled bindings (of deleted datasets) go with the connection, with their runs.
    bound = [b for b in await repository.list_bindings(conn, current.id) if not b.disabled_at]
    if bound:
        raise Conflict(
            f"connection {current.name!r} is bound to datasets"
            f" {', '.join(b.dataset for b in bound)}: unbind them first"
        )
    await repository.delete_disabled_bindings(conn, current.id)
    await repository.delete_connection(conn, current.id)


async def upgrade(
    conn: asyncpg.Connection, current: Connection, target: str, principal: Principal
) -> None:
    """Upgrade to the next version only (1.6 -> 1.7 -> 1.8)."""
    version = current.version
    at = VERSIONS.index(version)
    if at == len(VERSIONS) - 1:
        raise Conflict(f"connection {current.name!r} is at {version}, the latest version")
    if target != VERSIONS[at + 1]:
        raise Conflict(
            f"connection {current.name!r} is at {version}: it can only be upgraded to"
            f" the next version, {VERSIONS[at + 1]} (asked: {target})"
        )
    await repository.set_version(conn, current.id, target)
    await repository.insert_version_change(
        conn, current.id, "upgrade", version, target, principal.user_id
    )


async def downgrade(
    conn: asyncpg.Connection, current: Connection, target: str, principal: Principal
) -> None:
    """Downgrade only back to a lower version the connection was upgraded from."""
    version = current.version
    history = await repository.version_history(conn, current.id)
    upgraded_from = {h.from_version for h in history if h.action == "upgrade" and h.from_version}
    if VERSIONS.index(target) >= VERSIONS.index(version) or target not in upgraded_from:
        allowed = sorted(v for v in upgraded_from if VERSIONS.index(v) < VERSIONS.index(version))
        raise Conflict(
            f"connection {current.name!r} at {version} cannot be downgraded to {target}:"
            " a connection is only downgraded back to a version it was upgraded from"
            f" ({', '.join(allowed) if allowed else 'none'})"
        )
    await repository.set_version(conn, current.id, target)
    await repository.insert_version_change(
        conn, current.id, "downgrade", version, target, principal.user_id
    )


async def view(conn: asyncpg.Connection, r: Connection) -> dict[str, Any]:
    """What the API shows of a connection: never the access keys, sealed or not."""
    history = await repository.version_history(conn, r.id)
    upgraded_from = {h.from_version for h in history if h.action == "upgrade" and h.from_version}
    at = VERSIONS.index(r.version)
    return {
        "name": r.name, "connection_type": r.connection_type,
        "description": r.description, "bucket": r.bucket,
        "access_type": r.access_type, "version": r.version, "region": r.region,
        "endpoint_url": r.endpoint_url, "kms_key_arn": r.kms_key_arn,
        "owner_id": r.owner_id,
        "authorized_users": await repository.connection_users(conn, r.id),
        "has_access_keys": r.access_key_id_enc is not None,
        "upgrade_to": VERSIONS[at + 1] if at + 1 < len(VERSIONS) else None,
        "downgrade_to": sorted(v for v in upgraded_from if VERSIONS.index(v) < at),
        "version_history": [
            {"action": h.action, "from_version": h.from_version,
             "to_version": h.to_version, "changed_by": h.changed_by,
             "changed_at": h.changed_at.isoformat()}
            for h in history
        ],
        "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat(),
    }  # fmt: skip
