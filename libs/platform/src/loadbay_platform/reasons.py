"""Error reasons people read: kept to a size a page, an email and a database row can hold."""

from __future__ import annotations

from collections.abc import Sequence

MAX_REASON_CHARS = 2000
MAX_PROBLEMS = 100


def truncate(reason: str, limit: int = MAX_REASON_CHARS) -> str:
    """`reason`, cut to its first `limit` characters with a count of what was left out."""
    if len(reason) <= limit:
        return reason
    return f"{reason[:limit]}… ({len(reason) - limit:,} more characters)"


def truncate_all(reasons: Sequence[str], limit: int = MAX_PROBLEMS) -> list[str]:
    """Each reason truncated, and at most `limit` of them with a count of the rest."""
    kept = [truncate(r) for r in reasons[:limit]]
    if len(reasons) > limit:
        kept.append(f"… and {len(reasons) - limit:,} more")
    return kept
