"""Metrics of the ingestion service (see loadbay_platform.metrics for the shared ones)."""

from prometheus_client import Counter, Gauge, Histogram

RUNS_STARTED = Counter(
    "loadbay_ingestion_runs_started_total", "Ingestion runs queued, by trigger.", ["trigger"]
)
RUNS_FINISHED = Counter(
    "loadbay_ingestion_runs_finished_total",
    "Ingestion runs finished, by status and connection version.",
    ["status", "version"],
)
RUNS_ACTIVE = Gauge(
    "loadbay_ingestion_runs_active_runs", "Ingestion runs this replica is executing."
)
OBJECTS = Counter(
    "loadbay_ingestion_objects_total",
    "Remote objects considered by ingestion runs, by outcome (copied, skipped, failed).",
    ["outcome"],
)
BYTES_COPIED = Counter(
    "loadbay_ingestion_copied_bytes_total", "Bytes copied from remote buckets into loadbay."
)
RUN_SECONDS = Histogram(
    "loadbay_ingestion_run_duration_seconds",
    "Time from a run's start (slot taken) to its end.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400),
)
CONNECTION_TESTS = Counter(
    "loadbay_ingestion_connection_tests_total",
    "Connection tests, by outcome (ok, failed).",
    ["outcome"],
)
