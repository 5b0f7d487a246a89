"""How a consumer treats a failure: retry it (transient) or dead-letter it at once (terminal)."""


class TerminalError(Exception):
    """The event can never be handled as it is (bad content, unknown reference): retrying will
    not help, so it goes straight to the dead-letter topic with this message."""
