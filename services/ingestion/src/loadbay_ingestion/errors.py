"""Errors of the ingestion service: what went wrong and where, for a person to act on."""


class IngestionError(Exception):
    """The request cannot be carried out as it is."""

    status_code = 400


class NotFound(IngestionError):
    """No such resource, or not one the caller may see."""

    status_code = 404


class Conflict(IngestionError):
    """The resource's current state does not allow this."""

    status_code = 409


class Forbidden(IngestionError):
    """The caller may see the resource but not change it."""

    status_code = 403


class RemoteAccessError(Exception):
    """The remote bucket cannot be listed or read; the message says why, for the user."""


class Unprocessable(IngestionError):
    """The request is well-formed but refers to something it may not use (422)."""

    status_code = 422
