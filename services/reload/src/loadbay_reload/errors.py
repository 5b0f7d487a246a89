"""Errors of the reload service; each says what went wrong and where, for a person to act on."""

from __future__ import annotations

from loadbay_platform.errors import Conflict, Forbidden, NotFound


class DatasetNotFound(NotFound):
    def __init__(self, domain: str, name: str) -> None:
        super().__init__(f"no dataset {domain}/{name} (or you are not authorized on it)")


class NotAuthorized(Forbidden):
    """The caller may see the dataset but not do this to it."""


class DatasetExists(Conflict):
    def __init__(self, domain: str, name: str) -> None:
        super().__init__(f"dataset {domain}/{name} exists already")


class DomainReserved(Conflict):
    """The domain is a schema loadbay or PostgreSQL keeps for itself."""


class ReloadRunning(Conflict):
    def __init__(self, domain: str, name: str, execution_id: str) -> None:
        super().__init__(
            f"a reload of {domain}/{name} is running (execution {execution_id}); only one runs "
            "at a time per dataset: wait for it to finish, then process the files again"
        )
        self.execution_id = execution_id


class FilesNotSelectable(Conflict):
    """Some of the files named are not pending (processed, or being processed)."""


class ExecutionNotFound(NotFound):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution {execution_id} (or you are not authorized on its dataset)")
