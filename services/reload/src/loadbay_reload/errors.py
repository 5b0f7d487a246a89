"""Errors of the reload service; each says what went wrong and where, for a person to act on."""

from __future__ import annotations


class ReloadError(Exception):
    """A reload request could not be carried out."""

    status_code = 400


class DatasetNotFound(ReloadError):
    status_code = 404

    def __init__(self, domain: str, name: str) -> None:
        super().__init__(f"no dataset {domain}/{name} (or you are not authorized on it)")


class NotAuthorized(ReloadError):
    status_code = 403


class DatasetExists(ReloadError):
    status_code = 409

    def __init__(self, domain: str, name: str) -> None:
        super().__init__(f"dataset {domain}/{name} exists already")


class DomainReserved(ReloadError):
    status_code = 409


class ReloadRunning(ReloadError):
    status_code = 409

    def __init__(self, domain: str, name: str, execution_id: str) -> None:
        super().__init__(
            f"a reload of {domain}/{name} is running (execution {execution_id}); only one runs "
            "at a time per dataset: wait for it to finish, then process the files again"
        )
        self.execution_id = execution_id


class FilesNotSelectable(ReloadError):
    status_code = 409


class ExecutionNotFound(ReloadError):
    status_code = 404

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution {execution_id} (or you are not authorized on its dataset)")
