"""SQL expressions that check and type a staged property value (see plans.py for the
rules), and build a row's properties as jsonb."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from loadbay_loader.graph.plans import (
    DATE_TYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    STRING_TYPES,
    MergeSettings,
    PropertyColumn,
)
from loadbay_loader.graph.staging_store import Args

_DATE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$"
)
_ZONED = r"T.*(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_ARRAY_SPLIT = r"(?<!\\);"


def is_string(col: PropertyColumn) -> bool:
    return col.type in STRING_TYPES or (col.type == "Date" and not col.date_epoch)


def present_check(col: PropertyColumn, settings: MergeSettings) -> str:
    t = f"s.t{col.field}"
    if settings.allow_empty_strings and is_string(col):
        return f"({t} IS NOT NULL)"
    return f"({t} IS NOT NULL AND {t} <> '')"


def valid_check(col: PropertyColumn, x: str) -> str:
    """SQL: the (trimmed, non-null) text ``x`` is a valid value of the column's type.

    PostgreSQL's input functions do the parsing (``pg_input_is_valid`` reports without an
    exception); what they accept beyond Java's syntax is ruled out with cheap character tests:
    integers in PostgreSQL 16 also take ``_`` separators and 0x/0o/0b prefixes (one character
    class test costs less than seven ``strpos``), floats take ``inf``, any-case ``nan`` and hex.
    """
    if col.type in INTEGER_TYPES or col.type == "Long":
        check = f"{x} !~ '[_xXoObB]' AND pg_input_is_valid({x}, 'int8')"
        if col.type != "Long":
            lo, hi = INTEGER_TYPES[col.type]
            return f"CASE WHEN {check} THEN {x}::int8 BETWEEN {lo} AND {hi} ELSE false END"
        return f"CASE WHEN {check} THEN true ELSE false END"
    if col.type in FLOAT_TYPES:
        plain = " AND ".join(f"strpos({x}, '{ch}') = 0" for ch in "nNxX")
        return (
            f"CASE WHEN {plain} THEN pg_input_is_valid({x}, '{FLOAT_TYPES[col.type]}')"
            f" ELSE {x} IN ('NaN', '+NaN', '-NaN', 'Infinity', '+Infinity', '-Infinity') END"
        )
    if col.type in DATE_TYPES and col.date_epoch:
        return (
            f"CASE WHEN {x} ~ '{_DATE}'"
            f" THEN pg_input_is_valid({_zoned(x)}, 'timestamptz') ELSE false END"
        )
    return "true"  # Bool (anything not "true" is false), String, openCypher auto-cast types


def guard_check(col: PropertyColumn, x: str) -> str:
    """SQL: the (trimmed, non-null) text ``x`` passes the checks that its cast to the column's
    type (in :func:`json_value` or :func:`json_text`) does not make; a value that passes them
    is valid exactly when that cast does not raise. Cheaper than :func:`valid_check` for the
    optimistic insert, which takes a cast error (asyncpg's DataError) as a reason to check
    the batch record by record."""
    if col.type in INTEGER_TYPES:
        lo, hi = INTEGER_TYPES[col.type]
        return f"({x} !~ '[_xXoObB]' AND {x}::int8 BETWEEN {lo} AND {hi})"
    if col.type == "Long":
        return f"{x} !~ '[_xXoObB]'"
    if col.type in FLOAT_TYPES:
        return (
            f"CASE WHEN {x} !~ '[nNxX]' THEN true"
            f" ELSE {x} IN ('NaN', '+NaN', '-NaN', 'Infinity', '+Infinity', '-Infinity') END"
        )
    return valid_check(col, x)


def _zoned(x: str) -> str:
    return f"(CASE WHEN {x} ~ '{_ZONED}' THEN {x} ELSE {x} || 'Z' END)"


def json_value(col: PropertyColumn, x: str) -> str:
    """SQL: the jsonb value of the valid text ``x``."""
    if col.type == "Bool":
        return f"to_jsonb(lower({x}) = 'true')"
    if col.type in INTEGER_TYPES or col.type == "Long":
        return f"to_jsonb({x}::int8)"
    if col.type in FLOAT_TYPES:
        return f"to_jsonb({x}::{FLOAT_TYPES[col.type]})"
    if col.type in DATE_TYPES and col.date_epoch:
        return f"to_jsonb((extract(epoch FROM {_zoned(x)}::timestamptz) * 1000)::int8)"
    return f"to_jsonb({x})"


def json_text(col: PropertyColumn, x: str) -> str:
    """SQL: the valid text ``x`` as JSON text that reads back as :func:`json_value`'s jsonb
    (for a whole object, parsing text costs half what building jsonb value by value does)."""
    if col.type == "Bool":
        return f"(CASE WHEN lower({x}) = 'true' THEN 'true' ELSE 'false' END)"
    if col.type in INTEGER_TYPES or col.type == "Long":
        return f"{x}::int8::text"
    if col.type in DATE_TYPES and col.date_epoch:
        return f"((extract(epoch FROM {_zoned(x)}::timestamptz) * 1000)::int8)::text"
    # floats: json writes NaN and Infinity as strings, as jsonb does
    cast = f"::{FLOAT_TYPES[col.type]}" if col.type in FLOAT_TYPES else ""
    return f"to_json({x}{cast})::text"


def checked_value(col: PropertyColumn, x: str) -> str:
    valid = valid_check(col, x)
    value = json_value(col, x)
    return value if valid == "true" else f"CASE WHEN {valid} THEN {value} END"


def mismatch_message(col: PropertyColumn, a: Args, x: str) -> str:
    return f"format('%s: \"%s\" is not a valid %s', {a(col.header)}, left({x}, 100), {a(col.type)})"


def split_array(x: str) -> str:
    """SQL set: the elements of the array cell ``x`` (unescaped, trimmed, non-empty)."""
    return (
        f"(SELECT btrim(replace(e, '\\;', ';')) AS t"
        f" FROM regexp_split_to_table({x}, '{_ARRAY_SPLIT}') AS e"
        f" WHERE btrim(replace(e, '\\;', ';')) <> '')"
    )


VALUE_GROUP = 50  # property columns per statement that builds a batch's values


@dataclass(frozen=True)
class PropertyValue:
    """One property of a row as SQL: its name and JSON-quoted name (parameters), its value as
    jsonb and as JSON text, and whether the row has it."""

    name: str
    quoted_name: str
    value: str
    text: str
    present: str


def props_object(props: Sequence[PropertyValue]) -> str:
    """SQL: the jsonb object of a row's present properties. When all are present it is parsed
    from JSON text; otherwise it is built and stripped of nulls, which costs half as much
    again as building it, so it only runs when a value is missing."""
    if not props:
        return "'{}'::jsonb"
    fields = " || ',' || ".join(f"{p.quoted_name} || ':' || {p.text}" for p in props)
    full = f"('{{' || {fields} || '}}')::jsonb"
    some = _build_object([f"{p.name}, CASE WHEN {p.present} THEN {p.value} END" for p in props])
    every = " AND ".join(p.present for p in props)
    return f"CASE WHEN {every} THEN {full} ELSE jsonb_strip_nulls({some}) END"


def _build_object(pairs: Sequence[str]) -> str:
    """SQL: jsonb_build_object of the ("key, value") pairs, in calls of at most 50 pairs
    joined with || (a PostgreSQL function takes at most 100 arguments)."""
    calls = [", ".join(pairs[i : i + 50]) for i in range(0, len(pairs), 50)]
    return " || ".join(f"jsonb_build_object({call})" for call in calls)


def types_json(props: Sequence[PropertyColumn]) -> str:
    return json.dumps({c.name: c.type for c in props})
