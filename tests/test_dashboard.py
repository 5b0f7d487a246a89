"""The Grafana dashboard asks only for series and labels the services really expose.

Loads deploy/grafana/loadbay-overview.json, takes every `loadbay_*` series out of every panel's
PromQL (and out of the template variables' `label_values(...)` queries), maps each exposed
series name back to its metric (`_total` of a Counter; `_bucket`, `_sum`, `_count` of a
Histogram; a Gauge as is) and checks that the metric is registered in prometheus_client's
REGISTRY once the four metrics modules are imported, and that every label the expression uses
in a `{label=...}` selector or a `by (...)` / `without (...)` clause exists on it. No servers:
importing the modules registers the metrics.

The PromQL reading is deliberately small: a `by (...)` clause is checked against every metric
inside the aggregation it belongs to. Expressions with `on`, `ignoring`, `group_left`,
`group_right` or `__name__` are refused rather than half-checked: extend the check first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import loadbay_loader.metrics
import loadbay_notifier.metrics
import loadbay_platform.metrics
import loadbay_reload.metrics

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "loadbay-overview.json"
MODULES = (
    loadbay_platform.metrics,
    loadbay_reload.metrics,
    loadbay_loader.metrics,
    loadbay_notifier.metrics,
)
# The series prometheus_client exposes for each metric type (suffix added to the metric's
# registered name) and the labels a suffix adds. `_created` is exposed too, but not accepted:
# a dashboard has no use for it.
SERIES_OF_TYPE: dict[str, dict[str, frozenset[str]]] = {
    "counter": {"_total": frozenset()},
    "gauge": {"": frozenset()},
    "histogram": {"_bucket": frozenset({"le"}), "_sum": frozenset(), "_count": frozenset()},
}

METRIC = re.compile(r"\b(loadbay_\w+)(?:\s*\{([^}]*)\})?")
STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
OPEN = re.compile(r"\s*\(")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
UNSUPPORTED = re.compile(r"\b(?:on|ignoring|group_left|group_right)\s*\(|__name__")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(loadbay_\w+)[^,]*,\s*(\w+)\s*\)\s*$")


def exposed_series() -> dict[str, frozenset[str]]:
    """Every series name the four modules' metrics expose -> the labels a query may use on it."""
    registered = {family.name: family.type for family in REGISTRY.collect()}
    series: dict[str, frozenset[str]] = {}
    for module in MODULES:
        for collector in vars(module).values():
            if not isinstance(collector, MetricWrapperBase):
                continue
            (family,) = collector.describe()
            assert registered.get(family.name) == family.type, f"{family.name} not in REGISTRY"
            # prometheus_client has no public accessor for a metric's label names.
            labels = frozenset(collector._labelnames)
            for suffix, extra in SERIES_OF_TYPE[family.type].items():
                series[family.name + suffix] = labels | extra
    return series


def closing(expr: str, opening: int) -> int:
    """Index of the parenthesis closing the one at `opening`."""
    depth = 0
    for i in range(opening, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if depth == 0:
            return i
    raise AssertionError(f"unbalanced parentheses in {expr!r}")


def opening(expr: str, closing_at: int) -> int:
    """Index of the parenthesis opening the one closing at `closing_at`."""
    depth = 0
    for i in range(closing_at, -1, -1):
        depth += {")": 1, "(": -1}.get(expr[i], 0)
        if depth == 0:
            return i
    raise AssertionError(f"unbalanced parentheses in {expr!r}")


def problems_in(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """What in one PromQL expression names a series or label that is not exposed."""
    if UNSUPPORTED.search(expr):
        return [f"{expr!r}: on/ignoring/group_*/__name__ are not checked; extend the test"]
    problems: list[str] = []
    if not METRIC.search(expr):
        problems.append(f"{expr!r}: no loadbay_* series")
    for match in METRIC.finditer(expr):
        name, selector = match.group(1), match.group(2) or ""
        if name not in series:
            problems.append(f"{name}: not exposed by any registered loadbay metric")
            continue
        for label in MATCHER.findall(STRING.sub('""', selector)):
            if label not in series[name]:
                problems.append(f"{name}: no label {label} (has {sorted(series[name])})")
    # Label values may hold parentheses or keywords: blank them, keeping every offset.
    shape = STRING.sub(lambda m: '"' + " " * (len(m.group()) - 2) + '"', expr)
    for match in GROUPING.finditer(shape):
        labels = [label.strip() for label in match.group(1).split(",") if label.strip()]
        if inner := OPEN.match(shape, match.end()):  # sum by (x) (inner)
            start = inner.end() - 1
            scope = shape[start : closing(shape, start) + 1]
        else:  # sum (inner) by (x)
            end = shape.rindex(")", 0, match.start())
            scope = shape[opening(shape, end) : end + 1]
        scope_names = [m.group(1) for m in METRIC.finditer(scope)]
        if not scope_names:
            problems.append(f"{expr!r}: no loadbay_* series to group by ({match.group(1)})")
        in_scope = [name for name in scope_names if name in series]
        for name in in_scope:
            for label in labels:
                if label not in series[name]:
                    problems.append(
                        f"{name}: no label {label} to group by (has {sorted(series[name])})"
                    )
    return problems


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))  # a collapsed row holds its panels


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_every_series_and_label_in_the_dashboard_is_exposed() -> None:
    series = exposed_series()
    problems: list[str] = []
    checked = 0
    for panel in panels(dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        exprs = [t.get("expr", "") for t in panel.get("targets", [])]
        if not exprs or not all(exprs):
            problems.append(f"panel {panel['title']!r}: a target without a PromQL expr")
        for expr in filter(None, exprs):
            checked += 1
            problems += [f"panel {panel['title']!r}: {p}" for p in problems_in(expr, series)]
    assert checked > 0
    assert problems == []


def test_template_variables_query_exposed_series() -> None:
    series = exposed_series()
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    query = variables["service"]["query"]
    query = query["query"] if isinstance(query, dict) else query
    match = LABEL_VALUES.match(query)
    assert match, query
    name, label = match.groups()
    assert name == "loadbay_events_consumed_total"
    assert name in series
    assert label in series[name]


def test_every_panel_uses_the_datasource_variable() -> None:
    for panel in panels(dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        sources = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        assert all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources), panel[
            "title"
        ]


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(loadbay_events_consumed[5m])", "loadbay_events_consumed: not exposed"),
        ("loadbay_handler_duration_seconds", "loadbay_handler_duration_seconds: not exposed"),
        ("loadbay_emails_pending_total", "loadbay_emails_pending_total: not exposed"),
        ("loadbay_no_such_metric_total", "loadbay_no_such_metric_total: not exposed"),
        ('loadbay_emails_pending{service="notifier"}', "no label service"),
        ('loadbay_http_requests_total{route="/a", code="200"}', "no label code"),
        ("sum by (route) (rate(loadbay_events_consumed_total[5m]))", "no label route to group"),
        ("sum(rate(loadbay_loader_loads_total[5m])) by (file_type)", "no label file_type"),
        (
            "histogram_quantile(0.9, sum by (le) "
            "(rate(loadbay_http_request_duration_seconds_count[5m])))",
            "no label le",
        ),
        ("loadbay_outbox_backlog_events * on (service) loadbay_emails_pending", "extend the test"),
    ],
)
def test_the_check_catches(expr: str, problem: str) -> None:
    problems = problems_in(expr, exposed_series())
    assert any(problem in p for p in problems), problems


def test_the_check_accepts_good_expressions() -> None:
    good = [
        'sum by (service, le) (rate(loadbay_handler_duration_seconds_bucket{service=~"a|b"}[5m]))',
        'sum(rate(loadbay_loader_rows_loaded_total{file_type!="csv"}[5m])) by (file_type)',
        "max(loadbay_loader_dlz_backlog_publications)",
        'sum without (route) (rate(loadbay_http_requests_total{route="/x=y"}[1m]))',
        'sum by (route) (rate(loadbay_http_requests_total{status=~"(4|5).. by (x)"}[1m]))',
    ]
    series = exposed_series()
    assert [p for expr in good for p in problems_in(expr, series)] == []
