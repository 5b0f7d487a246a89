"""Errors of the ingestion service beyond the platform's API errors (loadbay_platform.errors)."""


class RemoteAccessError(Exception):
    """The remote bucket cannot be listed or read; the message says why, for the user."""
