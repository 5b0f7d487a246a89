"""Who may use the bulk loader, and what it may read: Neptune's IAM model, on loadbay's users.

The loader holds one graph, as a Neptune cluster is one graph. The graph's authorized users
(LOADBAY_LOADER_GRAPH_USERS) play the IAM principals granted `neptune-db:*` on the cluster:
only they start loads, see every load and read the graph. A load belongs to its requester, who
always sees it and alone may cancel it. What a load may read plays the S3 permissions of the
load's IAM role: the operator's LOADBAY_LOADER_READABLE_SOURCES, plus each caller's own folder
of the landing zone. Everything else is denied.

A principal of None means the loader runs without authentication (dev mode only): there are no
users, so every load and read is allowed, and no landing-zone folder is anybody's.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from loadbay_loader.graph.errors import LoadIdNotFound, LoadUrlAccessDenied, NeptuneError
from loadbay_loader.graph.request import LoadRequest
from loadbay_loader.settings import LoaderSettings
from loadbay_platform.auth import Principal
from loadbay_platform.secrets import InsecureConfiguration
from loadbay_platform.settings import PlatformSettings

log = logging.getLogger(__name__)

GRAPH_USERS = "LOADBAY_LOADER_GRAPH_USERS"
READABLE_SOURCES = "LOADBAY_LOADER_READABLE_SOURCES"
NEPTUNE_AUTH = "LOADBAY_LOADER_NEPTUNE_AUTH"
_UPLOAD_DATE = re.compile(r"^upload_date=\d+$")


class AccessDenied(NeptuneError):
    code = "AccessDeniedException"
    http_status = 403


class Unauthenticated(NeptuneError):
    """No valid bearer token: Neptune's AccessDeniedException, with HTTP's 401 and challenge."""

    code = "AccessDeniedException"
    http_status = 401
    headers = {"WWW-Authenticate": "Bearer"}


def check_startup(settings: LoaderSettings, platform: PlatformSettings) -> None:
    """Refuse to run without authentication outside dev mode; say when nobody may load."""
    if not settings.neptune_auth and not platform.dev_mode:
        raise InsecureConfiguration(
            f"{NEPTUNE_AUTH}=false turns off authentication of the bulk loader, so anyone who"
            f" reaches it may load and read the graph: it is allowed only in dev mode"
            f" (LOADBAY_DEV_MODE=true). Remove {NEPTUNE_AUTH} and list the graph's users in"
            f" {GRAPH_USERS}"
        )
    if settings.neptune_auth and not settings.graph_users:
        log.warning("%s is empty: nobody may start loads or read the graph", GRAPH_USERS)


@dataclass(frozen=True)
class LoaderAccess:
    graph_users: frozenset[str]
    readable: tuple[tuple[str, str], ...]  # (bucket, prefix)
    lz_bucket: str
    dlz_bucket: str

    @classmethod
    def of(cls, settings: LoaderSettings, platform: PlatformSettings) -> LoaderAccess:
        readable = tuple(
            (bucket, prefix)
            for bucket, _, prefix in (s.removeprefix("s3://").partition("/")
                                      for s in settings.readable_sources)
        )  # fmt: skip
        return cls(
            frozenset(settings.graph_users),
            readable,
            platform.s3.lz_bucket,
            platform.s3.dlz_bucket,
        )

    def is_graph_user(self, user: Principal | None) -> bool:
        return user is None or user.user_id in self.graph_users

    def require_graph_user(self, user: Principal | None, action: str) -> None:
        if not self.is_graph_user(user):
            assert user is not None
            raise AccessDenied(
                f"User {user.user_id!r} is not authorized to {action}: the graph's users are"
                f" listed by an operator in {GRAPH_USERS}"
            )

    def may_see(self, user: Principal | None, requested_by: str | None) -> bool:
        return self.is_graph_user(user) or (user is not None and user.user_id == requested_by)

    def require_visible(
        self, user: Principal | None, load_id: str, requested_by: str | None
    ) -> None:
        """A load the caller may not see does not exist, as far as they can tell."""
        if not self.may_see(user, requested_by):
            raise LoadIdNotFound(f"The load with id = {load_id} does not exist")

    def require_cancellable(
        self, user: Principal | None, load_id: str, requested_by: str | None
    ) -> None:
        self.require_visible(user, load_id, requested_by)
        if user is not None and user.user_id != requested_by:
            raise AccessDenied(f"Only the user who started load {load_id} may cancel it")

    def listed_requester(self, user: Principal | None) -> str | None:
        """Whose loads the caller's list shows: None for every load."""
        if self.is_graph_user(user):
            return None
        assert user is not None
        return user.user_id

    def require_readable(self, user: Principal | None, request: LoadRequest) -> None:
        """The load's source must be one the operator allows, or the caller's own LZ folder."""
        bucket, prefix = request.bucket, request.prefix
        if bucket == self.lz_bucket:
            self._require_own_folder(user, request)
            return
        if bucket == self.dlz_bucket and user is None:
            raise LoadUrlAccessDenied(
                f"Access denied to {request.source}: without authentication ({NEPTUNE_AUTH}"
                f"=false) the bulk loader does not read the data lake zone bucket {bucket}"
            )
        if any(bucket == b and prefix.startswith(p) for b, p in self.readable):
            return
        configured = ", ".join(f"s3://{b}/{p}" for b, p in self.readable) or "none"
        what = "the data lake zone bucket" if bucket == self.dlz_bucket else "the source"
        raise LoadUrlAccessDenied(
            f"Access denied to {request.source}: the bulk loader reads only the sources an"
            f" operator lists in {READABLE_SOURCES} (now: {configured}), and {what}"
            f" s3://{bucket}/{prefix} is not under one of them; ask an operator to add it"
            + (
                f", or land your files under your own folder of the landing zone,"
                f" s3://{self.lz_bucket}/<domain>/<dataset>/upload_date=<epoch>/{user.user_id}/"
                if user is not None
                else ""
            )
        )

    def _require_own_folder(self, user: Principal | None, request: LoadRequest) -> None:
        if user is None:
            raise LoadUrlAccessDenied(
                f"Access denied to {request.source}: without authentication ({NEPTUNE_AUTH}"
                f"=false) no folder of the landing zone bucket {self.lz_bucket} is yours, so"
                " the bulk loader does not read it"
            )
        parts = request.prefix.split("/")
        # Up to and including "<user_id>/": a prefix ending inside the user id segment
        # ("upload_date=1/al") would also list another user's folder ("al2/").
        own = (
            len(parts) >= 5
            and all(parts[:4])
            and _UPLOAD_DATE.match(parts[2]) is not None
            and parts[3] == user.user_id
            and not any(p in (".", "..") for p in parts)
        )
        if not own:
            raise LoadUrlAccessDenied(
                f"Access denied to {request.source}: in the landing zone bucket"
                f" {self.lz_bucket} the bulk loader reads only your own folder,"
                f" s3://{self.lz_bucket}/<domain>/<dataset>/upload_date=<epoch>/{user.user_id}/"
                " (the source must name it in full, ending with '/' or going deeper)"
            )
