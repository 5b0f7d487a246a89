"""Property values of the read API (``GET /graph/vertices/{id}``, ``/graph/edges/{id}``) as
JSON, whatever their stored type.

read_store.py reads values back typed as declared; most are JSON as they are (String, Bool,
Byte, Short, Int, Long, finite Float and Double). The others are answered as Neptune's Gremlin
endpoint answers them, in GraphSON 3:

- a Date (Gremlin ``Date``/``DateTime``, openCypher ``DateTime``, stored as epoch
  milliseconds) is ``{"@type": "g:Date", "@value": <epoch milliseconds>}``;
- a Float or Double that JSON has no number for is ``{"@type": "g:Double", "@value": "NaN"}``
  (or ``"Infinity"``, ``"-Infinity"``): GraphSON writes non-finite numbers as these strings.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND = dt.timedelta(milliseconds=1)
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def json_value(value: Any) -> Any:
    """One property value (or a list of them, as a vertex's valueMap has) as JSON."""
    if isinstance(value, list):
        return [json_value(item) for item in value]
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return {"@type": "g:Date", "@value": (aware - EPOCH) // _MILLISECOND}
    if isinstance(value, float) and not math.isfinite(value):
        return {"@type": "g:Double", "@value": _NON_FINITE.get(value, "NaN")}
    return value


def json_element(element: dict[str, Any]) -> dict[str, Any]:
    """A vertex or edge as read_store.py reads it, with its property values as JSON."""
    properties = {name: json_value(value) for name, value in element["properties"].items()}
    return {**element, "properties": properties}
