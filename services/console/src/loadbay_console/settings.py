"""Where the console finds the services' APIs, and how people sign in (LOADBAY_CONSOLE_<FIELD>).

Dev mode (LOADBAY_DEV_MODE=true, as `loadbay dev` runs) signs every visitor in as the dev user
with a token minted from the platform's dev secret (LOADBAY_AUTH__SECRET). Otherwise people sign
in with OIDC (authorization code with PKCE) at `oidc_issuer`, the issuer the APIs trust, and the
console passes the issuer's token to the APIs, which decide what the user may see and do.
"""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Public, like the platform's dev JWT secret: refused outside dev mode (app.py).
DEV_SESSION_SECRET = "loadbay-console-dev-session-secret"


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOADBAY_CONSOLE_", extra="ignore")

    reload_url: str = "http://127.0.0.1:8701"
    loader_url: str = "http://127.0.0.1:8702"
    distribution_url: str = "http://127.0.0.1:8704"
    ingestion_url: str = "http://127.0.0.1:8705"
    # Signs the session cookie (the session itself stays on the server).
    session_secret: SecretStr = SecretStr(DEV_SESSION_SECRET)
    # Browsers send the cookie over HTTPS only: on when public_url is https://, or set here.
    secure_cookies: bool = False
    session_ttl_s: int = 8 * 3600
    # Who the console signs in as in dev mode.
    dev_user_id: str = "dev"
    dev_user_email: str = "dev@example.com"
    # OIDC, outside dev mode: the issuer (its /.well-known/openid-configuration is read), this
    # console's client id (and secret, for a confidential client), and the console's own URL
    # as the issuer redirects back to it (`<public_url>/auth/callback`).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid email profile"
    # Which of the issuer's tokens the APIs accept as a bearer token.
    oidc_api_token: Literal["access_token", "id_token"] = "access_token"
    public_url: str = "http://127.0.0.1:8700"
    # Seconds a call to a service may take (uploads stream for as long as they need).
    api_timeout_s: float = 30.0
    # The largest Upload Data request (all its files), as the reload API's own limit.
    max_upload_bytes: int = 5 * 1024**3
