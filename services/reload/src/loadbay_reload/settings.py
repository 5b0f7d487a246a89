"""Settings of the reload service (`LOADBAY_RELOAD_*`), beside the shared platform ones."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ReloadSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOADBAY_RELOAD_", extra="ignore")

    # The bucket watcher lands files for object stores that send no event notifications.
    watcher_enabled: bool = False
    watch_interval_s: float = 2.0
    # Topic on which S3/MinIO event notifications (the `Records[]` JSON) arrive.
    s3_notifications_topic: str = "loadbay.s3.notifications"
