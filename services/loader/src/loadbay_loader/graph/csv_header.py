"""The header line of a graph CSV feed, turned into a typed column plan (plans.py).

Header rules (Neptune's, see mission-anchors A6/A7). Gremlin: ``~id`` (required), ``~label``,
and for edges ``~from`` and ``~to`` (required), each at most once and case-sensitive; a file is
an edge file when it has ``~from`` or ``~to``. Properties are ``name:Type``,
``name:Type(single|set)``, ``name:Type[]`` or ``name:Type(set)[]`` (type and cardinality ignore
case, ``\\:`` escapes a colon in a name, a name alone is a String); ``(single)[]`` is an error,
and so are arrays and ``(set)`` in edge files. Default cardinality: set. openCypher: nodes have
``:ID`` or ``:ID(space)``, optionally ``name:ID`` to keep the id as a String property, and
``:LABEL``; relationships have ``:START_ID``/``:END_ID`` (optionally with an id space),
``:TYPE``, and ``:ID`` exactly when ``userProvidedEdgeIds`` is absent or true. No arrays, all
properties single-valued; ``updateSingleCardinalityProperties`` does not apply (Neptune does not
support it for openCypher) and is ignored. A node without a label gets ``vertex``, an edge
without a ``~label``/``:TYPE`` column gets ``edge``.
"""

from __future__ import annotations

import csv
import re
from typing import Literal

from loadbay_loader.graph.feeds import Format, LoadOptions
from loadbay_loader.graph.plans import EdgePlan, PropertyColumn, VertexPlan
from loadbay_loader.streaming import limits

Plan = VertexPlan | EdgePlan

GREMLIN_TYPES = {
    "bool": "Bool",
    "boolean": "Bool",
    "byte": "Byte",
    "short": "Short",
    "int": "Int",
    "long": "Long",
    "float": "Float",
    "double": "Double",
    "string": "String",
    "date": "Date",
    "datetime": "Date",
}
OPENCYPHER_TYPES = {
    **{k: v for k, v in GREMLIN_TYPES.items() if k not in ("date", "datetime")},
    "datetime": "DateTime",
    "char": "Char",
    "date": "Date",
    "localdate": "LocalDate",
    "localdatetime": "LocalDateTime",
    "duration": "Duration",
    "point": "Point",
}

_GREMLIN_SYSTEM = ("~id", "~label", "~from", "~to")
_GREMLIN_TYPE = re.compile(r"(?P<type>[A-Za-z]+)(?:\((?P<card>[A-Za-z]+)\))?(?P<array>\[\])?")
_LAST_COLON = re.compile(r"(?<!\\):(?!.*(?<!\\):)")
_CYPHER_SYSTEM = re.compile(
    r"(?P<name>.*):(?P<kw>ID|START_ID|END_ID|LABEL|TYPE)(?:\((?P<space>[^()]*)\))?"
)


class HeaderError(ValueError):
    """The header line cannot be loaded; the message says what to change."""


def split_header_line(line: str) -> list[str]:
    line = line.removeprefix("\ufeff").rstrip("\r\n")
    return [name.strip() for name in next(csv.reader([line]), [])]


def feed_kind(header_line: str, fmt: Format) -> Literal["vertex", "edge"]:
    """Whether a feed holds vertices or edges, from its header line alone (the engine loads
    vertex files first). A header too broken to tell counts as a vertex file; loading it
    reports the problem."""
    names = split_header_line(header_line)
    if fmt == "opencypher":
        for name in names:
            m = _CYPHER_SYSTEM.fullmatch(name)
            if m is not None and m["kw"] in ("START_ID", "END_ID", "TYPE"):
                return "edge"
        return "vertex"
    return "edge" if "~from" in names or "~to" in names else "vertex"


def _check_name(name: str, token: str) -> None:
    if not name:
        raise HeaderError(f"column {token!r} has no property name")
    if any(ch in name for ch in " \r\n\t"):
        raise HeaderError(f"column {token!r}: property names cannot hold spaces or line breaks")


def _gremlin_property(token: str, field: int, edge: bool) -> PropertyColumn:
    split = _LAST_COLON.search(token)
    raw_name, spec = (token[: split.start()], token[split.end() :]) if split else (token, "String")
    name = raw_name.replace("\\:", ":")
    _check_name(name, token)
    m = _GREMLIN_TYPE.fullmatch(spec)
    type_ = GREMLIN_TYPES.get(m["type"].lower()) if m else None
    if m is None or type_ is None:
        raise HeaderError(
            f"column {token!r}: unknown type {spec!r} (use Bool, Byte, Short, Int, Long, Float,"
            " Double, String or Date, optionally with (single) or (set) and [])"
        )
    card = (m["card"] or "set").lower()
    if card not in ("single", "set"):
        raise HeaderError(f"column {token!r}: cardinality must be single or set, not {m['card']!r}")
    array = m["array"] is not None
    if array and card == "single":
        raise HeaderError(f"column {token!r}: a single-cardinality property cannot be an array")
    if edge and (array or (m["card"] is not None and card == "set")):
        raise HeaderError(f"column {token!r}: edge properties are single-valued (no [] or (set))")
    return PropertyColumn(field, token, name, type_, array=array, single=edge or card == "single")


def _parse_gremlin(names: list[str]) -> Plan:
    system: dict[str, int] = {}
    props: list[PropertyColumn] = []
    edge = "~from" in names or "~to" in names
    for i, token in enumerate(names):
        if not token:
            raise HeaderError(f"column {i + 1} has an empty name")
        if token.startswith("~"):
            if token not in _GREMLIN_SYSTEM or (not edge and token in ("~from", "~to")):
                raise HeaderError(
                    f"unknown system column {token!r} (system columns: ~id, ~label, ~from, ~to)"
                )
            if token in system:
                raise HeaderError(f"system column {token!r} appears twice")
            system[token] = i
        else:
            props.append(_gremlin_property(token, i, edge))
    _check_unique(props)
    required = ("~id", "~from", "~to") if edge else ("~id",)
    missing = [t for t in required if t not in system]
    if missing:
        kind = "an edge" if edge else "a vertex"
        raise HeaderError(f"no {' or '.join(missing)} column (required in {kind} file)")
    if edge:
        return EdgePlan(
            width=len(names),
            id_field=system["~id"],
            id_header="~id",
            from_field=system["~from"],
            from_header="~from",
            from_space="",
            to_field=system["~to"],
            to_header="~to",
            to_space="",
            label_field=system.get("~label"),
            label_header="~label",
            props=tuple(props),
        )
    return VertexPlan(
        width=len(names),
        id_field=system["~id"],
        id_header="~id",
        id_space="",
        label_field=system.get("~label"),
        label_header="~label",
        props=tuple(props),
        label_required=True,
    )


def _check_unique(props: list[PropertyColumn]) -> None:
    seen: set[str] = set()
    for col in props:
        if col.name in seen:
            raise HeaderError(f"property {col.name!r} has two columns")
        seen.add(col.name)


def _cypher_property(token: str, field: int) -> PropertyColumn:
    name, colon, spec = token.rpartition(":")
    if not colon:
        name, spec = token, "String"
    _check_name(name, token)
    if spec.endswith("[]"):
        raise HeaderError(f"column {token!r}: openCypher CSV has no array types")
    type_ = OPENCYPHER_TYPES.get(spec.lower())
    if type_ is None:
        raise HeaderError(
            f"column {token!r}: unknown type {spec!r} (use Bool, Byte, Short, Int, Long, Float,"
            " Double, String, DateTime, or Char, Date, LocalDate, LocalDateTime, Duration, Point)"
        )
    return PropertyColumn(field, token, name, type_, single=True, date_epoch=type_ != "Date")


def _parse_opencypher(names: list[str], user_provided_edge_ids: bool | None) -> Plan:
    system: dict[str, tuple[int, str, str]] = {}  # keyword -> (field, token, name or space)
    props: list[PropertyColumn] = []
    for i, token in enumerate(names):
        if not token:
            raise HeaderError(f"column {i + 1} has an empty name")
        m = _CYPHER_SYSTEM.fullmatch(token)
        if m is None:
            props.append(_cypher_property(token, i))
            continue
        kw = m["kw"]
        if kw in system:
            raise HeaderError(f"system column :{kw} appears twice")
        space = m["space"]
        if space is not None and (kw not in ("ID", "START_ID", "END_ID") or not space.strip()):
            raise HeaderError(f"column {token!r}: only :ID, :START_ID and :END_ID take an id space")
        if m["name"] and kw != "ID":
            raise HeaderError(f"column {token!r}: only :ID can be stored as a property (name:ID)")
        system[kw] = (i, token, m["name"] or (space or ""))
        if kw == "ID" and m["name"]:
            _check_name(m["name"], token)
    _check_unique(props)
    edge = bool({"START_ID", "END_ID", "TYPE"} & system.keys())
    if not edge:
        if "ID" not in system:
            raise HeaderError("no :ID column (required in a node file)")
        field, token, _ = system["ID"]
        m = _CYPHER_SYSTEM.fullmatch(token)
        assert m is not None
        label = system.get("LABEL")
        return VertexPlan(
            width=len(names),
            id_field=field,
            id_header=token,
            id_space=(m["space"] or "").strip(),
            label_field=label[0] if label else None,
            label_header=label[1] if label else ":LABEL",
            props=tuple(props),
            label_required=False,
            id_property=m["name"] or None,
        )
    if "LABEL" in system:
        raise HeaderError(":LABEL belongs in node files; a relationship has one :TYPE")
    missing = [f":{k}" for k in ("START_ID", "END_ID") if k not in system]
    if missing:
        raise HeaderError(f"no {' or '.join(missing)} column (required in a relationship file)")
    ids = system.get("ID")
    if ids is not None and ids[2]:
        raise HeaderError(
            f"column {ids[1]!r}: a relationship id cannot be a property or have an id space"
        )
    if user_provided_edge_ids is False and ids is not None:
        raise HeaderError(
            "userProvidedEdgeIds is false, so relationship files must not have an :ID column"
        )
    if user_provided_edge_ids is not False and ids is None:
        raise HeaderError(
            "no :ID column: relationship files need one unless userProvidedEdgeIds is false"
        )
    start, end, type_ = system["START_ID"], system["END_ID"], system.get("TYPE")
    return EdgePlan(
        width=len(names),
        id_field=ids[0] if ids else None,
        id_header=":ID",
        from_field=start[0],
        from_header=start[1],
        from_space=start[2].strip(),
        to_field=end[0],
        to_header=end[1],
        to_space=end[2].strip(),
        label_field=type_[0] if type_ else None,
        label_header=":TYPE",
        props=tuple(props),
    )


def parse_header(names: list[str], options: LoadOptions) -> Plan:
    """The typed column plan of a header (already split into names), or HeaderError."""
    most = limits.current().max_columns
    if len(names) > most:
        raise HeaderError(
            f"{len(names)} columns: a header may have at most {most}"
            f" (LOADBAY_LOADER_MAX_COLUMNS; PostgreSQL tables take {limits.POSTGRES_MAX_COLUMNS})"
        )
    if options.format == "opencypher":
        return _parse_opencypher(names, options.user_provided_edge_ids)
    if options.format == "csv":
        return _parse_gremlin(names)
    raise ValueError(f"not a property-graph CSV format: {options.format!r}")
