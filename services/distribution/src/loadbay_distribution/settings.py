"""Settings of the distribution service (`LOADBAY_DISTRIBUTION_*`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class DistributionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOADBAY_DISTRIBUTION_", extra="ignore")

    # How often due cron schedules are looked for.
    scheduler_interval_s: float = 5.0
