"""The two kinds of failure every service names the same way.

- `TerminalError`: work that can never succeed as it is (an event with bad content or an
  unknown reference, an email every recipient refused). Retrying will not help: an event goes
  straight to its dead-letter topic with this message, an email is marked failed.
- `ApiError` and its four kinds: a request an API cannot carry out as it is. Every API answers
  it the same way (http_errors.py): its `status_code` and `{"error": <class name>,
  "message": <what went wrong and where, for a person to act on>}`.
"""


class TerminalError(Exception):
    """The work can never be done as it is; the message says why."""


class ApiError(Exception):
    """A request that cannot be carried out as it is (400)."""

    status_code = 400


class NotFound(ApiError):
    """No such resource, or not one the caller may see (404)."""

    status_code = 404


class Forbidden(ApiError):
    """The caller may see the resource but not do this to it (403)."""

    status_code = 403


class Conflict(ApiError):
    """The resource's current state does not allow this (409)."""

    status_code = 409


class Unprocessable(ApiError):
    """Well-formed, but it refers to something it may not use (422)."""

    status_code = 422
