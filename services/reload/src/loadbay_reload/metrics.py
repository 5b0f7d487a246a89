"""Metrics of the reload service (see loadbay_platform.metrics for the shared ones)."""

from prometheus_client import Counter

FILES_LANDED = Counter(
    "loadbay_reload_files_landed_total",
    "Landed objects registered as pending files, by how they arrived.",
    ["source"],
)
RELOADS_STARTED = Counter(
    "loadbay_reload_executions_started_total", "Reload executions started.", ["trigger"]
)
RELOADS_FINISHED = Counter(
    "loadbay_reload_executions_finished_total", "Reload executions finished.", ["status"]
)
RELOADS_REJECTED = Counter(
    "loadbay_reload_executions_rejected_total",
    "Reload triggers refused because a reload of the dataset was running.",
    ["trigger"],
)
