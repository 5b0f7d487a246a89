"""The landing zone's layout, and the S3 event notification format translated into landings.

LZ keys look like `<domain>/<dataset>/upload_date=<epoch>/<user_id>/<file_type>/<name>`; a
batch is one `upload_date=.../<user_id>/<file_type>/` folder, and `_SUCCESS` in it triggers
the batch's reload.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loadbay_contracts import FileLanded
from loadbay_platform.errors import TerminalError

SUCCESS_MARKER = "_SUCCESS"
LAYOUT = "<domain>/<dataset>/upload_date=<epoch>/<user_id>/<file_type>/<file_name>"
_UPLOAD_DATE = re.compile(r"^upload_date=(\d{1,13})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_KEY_BYTES = 1024


def storable(key: str) -> bool:
    """Whether PostgreSQL can hold `key` (text and jsonb hold no NUL, and only valid UTF-8)."""
    if "\x00" in key:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate, from a JSON escape
        return False
    return True


class MalformedLandingPath(TerminalError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"malformed landing path {key!r}: {problem}; expected {LAYOUT}")


@dataclass(frozen=True)
class LandingPath:
    domain: str
    dataset: str
    upload_date: int
    user_id: str
    file_type: str
    name: str

    @property
    def batch(self) -> str:
        """The batch folder relative to the dataset: `upload_date=<epoch>/<user_id>/<type>`."""
        return f"upload_date={self.upload_date}/{self.user_id}/{self.file_type}"

    @property
    def batch_prefix(self) -> str:
        return f"{self.domain}/{self.dataset}/{self.batch}/"

    @property
    def is_success_marker(self) -> bool:
        return self.name == SUCCESS_MARKER


def printable(key: str) -> str:
    """`key` with control characters and unpaired surrogates escaped (``\\x00``): safe to
    store in PostgreSQL (which holds no NUL) and to show."""
    escaped = key.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)


def parse_landing_path(key: str) -> LandingPath:
    if _CONTROL.search(key):
        raise MalformedLandingPath(key, "it contains a control character (such as NUL)")
    if printable(key) != key:
        raise MalformedLandingPath(key, "it is not valid UTF-8")
    parts = key.split("/")
    if len(parts) != 6:
        raise MalformedLandingPath(key, f"it has {len(parts)} parts, not 6 (a nested folder?)")
    domain, dataset, upload, user_id, file_type, name = parts
    if not all(parts):
        raise MalformedLandingPath(key, "it has an empty part")
    if any(p in (".", "..") for p in parts):
        raise MalformedLandingPath(key, "it has a '.' or '..' part")
    match = _UPLOAD_DATE.match(upload)
    if match is None:
        raise MalformedLandingPath(key, f"{upload!r} is not upload_date=<epoch>")
    return LandingPath(domain, dataset, int(match.group(1)), user_id, file_type, name)


def landing_key(
    domain: str, dataset: str, upload_date: int, user_id: str, file_type: str, name: str
) -> str:
    if "/" in name or not name or name == SUCCESS_MARKER:
        raise ValueError(f"not a valid file name to upload: {name!r}")
    key = f"{domain}/{dataset}/upload_date={upload_date}/{user_id}/{file_type}/{name}"
    if len(key.encode("utf-8", "backslashreplace")) > MAX_KEY_BYTES:
        raise ValueError(f"file name too long: S3 keys hold at most {MAX_KEY_BYTES} bytes")
    try:
        parse_landing_path(key)
    except MalformedLandingPath as exc:
        raise ValueError(f"not a valid file name to upload: {name!r} ({exc})") from exc
    return key


# -- S3 event notifications (AWS and MinIO send the same `Records[]` shape) --------------------


class _S3Object(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    size: int = 0
    eTag: str = ""


class _S3Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class _S3Entity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucket: _S3Bucket
    object: _S3Object


class _S3Record(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    event_name: str = Field(alias="eventName")
    event_time: datetime | None = Field(default=None, alias="eventTime")
    s3: _S3Entity


class S3Notification(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    records: list[_S3Record] = Field(alias="Records")


def landings_from_s3_notification(raw: bytes) -> list[FileLanded]:
    """The objects created according to one notification message (deletes are ignored; an
    `s3:TestEvent` has no records and yields nothing)."""
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TerminalError(f"S3 notification is not JSON: {exc}") from exc
    if isinstance(payload, dict) and "Records" not in payload and payload.get("Event"):
        return []  # s3:TestEvent
    try:
        notification = S3Notification.model_validate(payload)
    except ValidationError as exc:
        raise TerminalError(f"not an S3 event notification: {exc}") from exc
    return [
        FileLanded(
            bucket=r.s3.bucket.name,
            key=unquote_plus(r.s3.object.key),  # keys arrive URL-encoded
            size=r.s3.object.size,
            etag=r.s3.object.eTag.strip('"'),
            landed_at=r.event_time,
            source="s3-notification",
        )
        for r in notification.records
        if r.event_name.removeprefix("s3:").startswith("ObjectCreated")
    ]
