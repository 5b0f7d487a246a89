"""Text that PostgreSQL can store: a ``text`` value holds no NUL, and UTF-8 has no encoding
for a lone UTF-16 surrogate (``\\ud800``, which Python strings can hold after an escape is
decoded). What a load records about a file (an error message quoting a bad line, a file name)
goes through :func:`storable`, so a hostile file cannot make its own error unrecordable and
leave its load stuck "in progress"."""

from __future__ import annotations


def storable(text: str) -> str:
    """`text` with each NUL written as ``\\x00`` and each lone surrogate as ``\\udXXX``; text
    without them is returned as it is."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
