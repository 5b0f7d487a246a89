"""The metric catalogue shared by every service (`loadbay_<what>_<unit>`).

Service-specific metrics live in the service's own `metrics.py` (each process exports only its own,
so they need no `service` label). These shared ones carry `service`, so one Grafana dashboard
can show all services side by side (deploy/grafana).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "loadbay_events_consumed_total",
    "Events taken from Kafka, by outcome (handled, duplicate, dead_lettered, retried).",
    ["service", "topic", "outcome"],
)
EVENTS_PUBLISHED = Counter(
    "loadbay_events_published_total",
    "Events the outbox relay published to Kafka.",
    ["service", "topic"],
)
HANDLER_SECONDS = Histogram(
    "loadbay_handler_duration_seconds",
    "Time to handle one event, effect and inbox row committed.",
    ["service", "event_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
OUTBOX_BACKLOG = Gauge(
    "loadbay_outbox_backlog_events",
    "Events written to the outbox and not yet published.",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "loadbay_consumer_lag_messages",
    "Messages behind the partition's high watermark, as seen at the last fetch.",
    ["service", "topic", "partition"],
)
HTTP_REQUESTS = Counter(
    "loadbay_http_requests_total",
    "HTTP requests served, by route and status code.",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "loadbay_http_request_duration_seconds",
    "HTTP request latency.",
    ["service", "method", "route"],
)
WORK_JOBS = Counter(
    "loadbay_work_jobs_total",
    "Long-running jobs (loads) taken off the poll loop, by outcome (done, given_up).",
    ["service", "event_type", "outcome"],
)
WORK_QUEUED = Gauge(
    "loadbay_work_queued_jobs",
    "Long-running jobs queued or running, as seen at the last claim.",
    ["service"],
)


def record_http_metrics(app: FastAPI, service: str) -> None:
    """Count and time every request of `app` by route template (HTTP_REQUESTS, HTTP_SECONDS)."""

    @app.middleware("http")
    async def record_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        path = getattr(request.scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(service, request.method, path, str(response.status_code)).inc()
        HTTP_SECONDS.labels(service, request.method, path).observe(time.perf_counter() - started)
        return response
