"""Settings of the notifier service (`LOADBAY_NOTIFIER_*`), beside the shared platform ones.

Where the mail relay is lives in the platform's `SmtpSettings` (`LOADBAY_SMTP__*`).
"""

from __future__ import annotations

import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOADBAY_NOTIFIER_", extra="ignore")

    # Failed sends are retried after retry_base_s, doubling each time up to retry_max_s, plus
    # up to retry_base_s at random; the defaults (1 s to 5 min, 20 attempts) ride out a mail
    # relay outage of about an hour.
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)
    # New emails wake the sender at once (LISTEN/NOTIFY); this poll is the fallback when a
    # notification is missed, e.g. while the listening connection is being re-opened.
    poll_interval_s: float = Field(default=1.0, gt=0)
    # Emails claimed (and sent concurrently) per round.
    batch_size: int = Field(default=10, ge=1)
    # A claimed email is not due again for this long: the time a sender has to finish one
    # send before another replica may take the email over. Sends are cut off at half of it.
    claim_lease_s: float = Field(default=300.0, gt=0)
    # Who this sender is, stable across restarts of the same replica (the pod name in
    # Kubernetes): a restarted sender retries its own interrupted sends at once. Give each
    # replica on one host its own id.
    sender_id: str = Field(default_factory=socket.gethostname, min_length=1)
