"""Refusing to run on a known secret: outside dev mode every secret must be set by the operator.

The built-in secrets (the dev JWT secret, the ingestion service's dev encryption key) are in
this public repository, so a service that used one silently would accept forged tokens or
encrypt access keys with a key anyone can read.
"""

from __future__ import annotations

import logging

from loadbay_platform.settings import DEV_AUTH_SECRET, PlatformSettings

log = logging.getLogger(__name__)


class InsecureConfiguration(RuntimeError):
    """A service was asked to start on a default or missing secret outside dev mode."""


def require_secret(value: str | None, *, default: str, variable: str, dev_mode: bool) -> None:
    """Refuse (outside dev mode) or warn (in dev mode) when `value` is missing or the default.

    `variable` is the environment variable the operator must set, named in the message.
    """
    if value and value != default:
        return
    problem = "is not set" if not value else "is the public built-in default"
    if dev_mode:
        log.warning("%s %s: acceptable in dev mode only", variable, problem)
        return
    raise InsecureConfiguration(
        f"{variable} {problem}: set it to a long random value (for example the output of"
        " `python -c 'import secrets; print(secrets.token_urlsafe(48))'`), or set"
        " LOADBAY_DEV_MODE=true on a development machine"
    )


def check_platform_secrets(settings: PlatformSettings) -> None:
    """The JWT secret matters only when tokens are not verified against an OIDC issuer."""
    if settings.auth.jwks_url:
        return
    require_secret(
        settings.auth.secret.get_secret_value(),
        default=DEV_AUTH_SECRET,
        variable="LOADBAY_AUTH__SECRET",
        dev_mode=settings.dev_mode,
    )
