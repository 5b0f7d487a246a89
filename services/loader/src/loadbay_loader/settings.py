"""Settings of the loader (`LOADBAY_LOADER_*`), beside the shared platform ones."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, PositiveInt, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from loadbay_loader.streaming.limits import InputLimits
from loadbay_platform.settings import env_list


class RoleCredentials(BaseModel):
    access_key_id: str
    secret_access_key: str


class LoaderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOADBAY_LOADER_", extra="ignore")

    # The bulk-loader API takes the bearer JWT of the other APIs. Turning it off (as a
    # Neptune cluster without IAM authentication runs, so scripts work as-is) is allowed in dev
    # mode only: the loader refuses to start with it elsewhere.
    neptune_auth: bool = True
    # The graph's authorized users (user ids, the tokens' `sub`): only they may start loads,
    # see every load and read the graph. Empty: nobody.
    graph_users: Annotated[list[str], NoDecode] = []
    # What the loader may read, as s3://bucket/prefix (string prefixes, as S3 matches them).
    # Empty: nothing but each caller's own landing-zone folder.
    readable_sources: Annotated[list[str], NoDecode] = []
    # The region the loader's object store is in; a load request must name it. Default: the
    # S3 settings' region.
    region: str | None = None
    # iamRoleArn -> credentials. Empty: any well-formed role ARN uses the S3 settings' keys.
    iam_roles: dict[str, RoleCredentials] = {}
    # vCPUs that `parallelism` scales (LOW = /8, MEDIUM = /2, HIGH = x1, OVERSUBSCRIBE = x2).
    vcpus: int | None = None
    queue_limit: int = 64
    # Connections of the bulk loader's own pool: one per feed loading at once (parallelism),
    # plus two (the runner's lock and the load's watcher); parallelism is capped to fit.
    graph_pool_size: int = Field(default=8, ge=3)
    # A load request is a few hundred bytes; a larger body is refused with 413 before parsing.
    max_request_bytes: int = 1 << 20

    @field_validator("graph_users", "readable_sources", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        return env_list(value)

    @field_validator("graph_users")
    @classmethod
    def _no_blank_users(cls, users: list[str]) -> list[str]:
        if any(not u.strip() or "\x00" in u for u in users):
            raise ValueError("LOADBAY_LOADER_GRAPH_USERS holds an empty or invalid user id")
        return users

    @field_validator("readable_sources")
    @classmethod
    def _s3_sources(cls, sources: list[str]) -> list[str]:
        for source in sources:
            bucket = source.removeprefix("s3://").partition("/")[0]
            if not source.startswith("s3://") or not bucket:
                raise ValueError(
                    f"LOADBAY_LOADER_READABLE_SOURCES: {source!r} is not s3://bucket/prefix"
                )
        return sources

    # -- hostile files (streaming/limits.py): what one file may cost before it fails --------
    max_decompressed_bytes: PositiveInt = InputLimits.max_decompressed_bytes
    max_compression_ratio: PositiveInt = InputLimits.max_compression_ratio
    ratio_grace_bytes: PositiveInt = InputLimits.ratio_grace_bytes
    max_record_bytes: PositiveInt = InputLimits.max_record_bytes
    max_columns: PositiveInt = InputLimits.max_columns
    # A bulk load during which the loader stopped (crashed, was killed) this many times is
    # failed instead of resumed again.
    max_restarts: PositiveInt = 3

    def input_limits(self) -> InputLimits:
        return InputLimits(
            max_decompressed_bytes=self.max_decompressed_bytes,
            max_compression_ratio=self.max_compression_ratio,
            ratio_grace_bytes=self.ratio_grace_bytes,
            max_record_bytes=self.max_record_bytes,
            max_columns=self.max_columns,
        )
