"""Metrics of the distribution service (see loadbay_platform.metrics for the shared ones)."""

from prometheus_client import Counter

RUNS_STARTED = Counter(
    "loadbay_distribution_runs_started_total", "Distribution runs started.", ["trigger"]
)
RUNS_FINISHED = Counter(
    "loadbay_distribution_runs_finished_total", "Distribution runs finished.", ["status"]
)
WORKSPACE_LOADS = Counter(
    "loadbay_distribution_workspace_loads_total",
    "Per-workspace dataset loads, by outcome.",
    ["status"],
)
