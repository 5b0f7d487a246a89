"""Neptune's error model: an exception name, an HTTP status, and a detailed message.

The body is the one Neptune's REST API returns:
`{"code": "InvalidParameterException", "requestId": "...", "detailedMessage": "..."}`.
"""

from __future__ import annotations


class NeptuneError(Exception):
    code = "InternalFailureException"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(NeptuneError):
    code = "BadRequestException"
    http_status = 400


class MissingParameter(NeptuneError):
    code = "MissingParameterException"
    http_status = 400

    def __init__(self, name: str) -> None:
        super().__init__(f"Missing required parameter: {name}")


class InvalidParameter(NeptuneError):
    code = "InvalidParameterException"
    http_status = 400


class LoadIdNotFound(NeptuneError):
    code = "BulkLoadIdNotFoundException"
    http_status = 404


class LoadUrlAccessDenied(NeptuneError):
    code = "LoadUrlAccessDeniedException"
    http_status = 400


class S3Problem(NeptuneError):
    code = "S3Exception"
    http_status = 400


class Unsupported(NeptuneError):
    code = "UnsupportedOperationException"
    http_status = 400
