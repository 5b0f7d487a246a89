"""Settings of the loader (`LOADBAY_LOADER_*`), beside the shared platform ones."""

from __future__ import annotations

from pydantic import BaseModel, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

from loadbay_loader.limits import InputLimits


class RoleCredentials(BaseModel):
    access_key_id: str
    secret_access_key: str


class LoaderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOADBAY_LOADER_", extra="ignore")

    # The bulk-loader API takes the bearer JWT of the other APIs; turn it off on a private
    # network, as a Neptune cluster without IAM authentication runs, so scripts work as-is.
    neptune_auth: bool = True
    # The region the loader's object store is in; a load request must name it. Default: the
    # S3 settings' region.
    region: str | None = None
    # Buckets the loader may read from (None: any bucket its credentials reach).
    readable_buckets: list[str] | None = None
    # iamRoleArn -> credentials. Empty: any well-formed role ARN uses the S3 settings' keys.
    iam_roles: dict[str, RoleCredentials] = {}
    # vCPUs that `parallelism` scales (LOW = /8, MEDIUM = /2, HIGH = x1, OVERSUBSCRIBE = x2).
    vcpus: int | None = None
    queue_limit: int = 64

    # -- hostile files (limits.py): what one file may cost before it fails ------------------
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
