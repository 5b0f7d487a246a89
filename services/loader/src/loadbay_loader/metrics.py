"""Metrics of the loader (see loadbay_platform.metrics for the shared ones)."""

from prometheus_client import Counter, Gauge, Histogram

ROWS_LOADED = Counter(
    "loadbay_loader_rows_loaded_total", "Rows committed into the warehouse.", ["file_type"]
)
BYTES_LOADED = Counter(
    "loadbay_loader_bytes_loaded_total", "Bytes of source files committed.", ["file_type"]
)
LOADS = Counter("loadbay_loader_loads_total", "Loads finished, by outcome.", ["kind", "status"])
LOAD_SECONDS = Histogram(
    "loadbay_loader_load_duration_seconds",
    "Wall time of one load, from first byte read to commit.",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800),
)
DLZ_BACKLOG = Gauge(
    "loadbay_loader_dlz_backlog_publications",
    "Successful reloads whose files are not yet copied to the DLZ.",
)
WORKSPACE_LOADS = Counter(
    "loadbay_loader_workspace_loads_total",
    "Loads into one client workspace (a target of a workspace.load.requested), by mode and outcome"
    " (untouched: the file had no rows for the workspace's client id).",
    ["mode", "status"],
)
WORKSPACE_ROWS = Counter(
    "loadbay_loader_workspace_rows_total",
    "Rows changed in client workspaces, by change (upserted, deleted).",
    ["change"],
)
