"""Errors of the distribution service: what went wrong and where, for a person to act on."""


class DistributionError(Exception):
    status_code = 400


class NotFound(DistributionError):
    status_code = 404


class Conflict(DistributionError):
    status_code = 409


class Forbidden(DistributionError):
    status_code = 403
