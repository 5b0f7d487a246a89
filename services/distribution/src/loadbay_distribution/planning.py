"""Which file each client workspace loads next (GoodData ADD v2 rules).

- A workspace's last load timestamp (LSTS) is kept per dataset; without one, its creation time
  stands in, and its first load of the dataset is full whatever the file says.
- A run takes, per dataset and workspace, the first batch whose timestamp is greater than the
  LSTS, and only one batch per run.
- A workspace whose previous load failed retries that batch; if the retry succeeds it catches
  up within the run: up to the batch the other workspaces load in this run (the run's target,
  as in the seed's Workspace 1 / Workspace 2 example), or, when only catching-up workspaces
  load the dataset in this run, through every newer batch of the run's listing.
- Failures count once per timestamp: a failure counts when the newest batch of the dataset
  in the run's listing is newer than at the last counted failure (or after a success), so
  retrying one file with no newer file in between does not count again. After three
  successive failures a workspace needs manual recovery: runs skip it until a batch newer
  than the one of its last counted failure appears (the seed's recovery steps: export the
  missing data with a new timestamp, delete the old files, run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loadbay_distribution.naming import Batch

MAX_FAILURES = 3


@dataclass(frozen=True)
class WorkspaceState:
    workspace_id: str
    created_at: datetime
    lsts: str | None = None
    failure_streak: int = 0
    last_failed_ts: str | None = None

    @property
    def base(self) -> str:
        return self.lsts or self.created_at.strftime("%Y%m%d%H%M%S")

    @property
    def needs_recovery(self) -> bool:
        return self.failure_streak >= MAX_FAILURES

    def mode_for(self, batch: Batch) -> str:
        return "full" if self.lsts is None else batch.mode


def next_batch(batches: list[Batch], state: WorkspaceState) -> Batch | None:
    """The first batch newer than the workspace's LSTS, unless it must wait for recovery."""
    candidate = next((b for b in batches if b.timestamp > state.base), None)
    if candidate is None:
        return None
    if state.needs_recovery and (
        state.last_failed_ts is None or candidate.timestamp <= state.last_failed_ts
    ):
        return None
    return candidate


@dataclass(frozen=True)
class DatasetPlan:
    target: str | None  # how far a catching-up workspace may go in this run
    first: dict[str, Batch]  # workspace -> its first batch in this run
    catch_up: frozenset[str]  # workspaces that may continue up to the target
    newest: str | None  # the newest batch of the run's listing (failures count against it)
    later: tuple[Batch, ...] = ()  # the listing's batches a catching-up workspace may load


def plan_dataset(batches: list[Batch], states: list[WorkspaceState]) -> DatasetPlan:
    first = {s.workspace_id: b for s in states if (b := next_batch(batches, s)) is not None}
    catch_up = frozenset(
        s.workspace_id for s in states if s.failure_streak > 0 and s.workspace_id in first
    )
    newest = batches[-1].timestamp if batches else None
    others = [b.timestamp for w, b in first.items() if w not in catch_up]
    target = max(others) if others else newest if catch_up else None
    start = min((first[w].timestamp for w in catch_up), default=None)
    later = tuple(
        b
        for b in batches
        if start is not None and target is not None and start < b.timestamp <= target
    )
    return DatasetPlan(target, first, catch_up, newest, later)


def continue_after(batches: list[Batch], state: WorkspaceState, target: str | None) -> Batch | None:
    """The next batch for a catching-up workspace that just succeeded, within the target."""
    if target is None:
        return None
    nxt = next_batch(batches, state)
    return nxt if nxt is not None and nxt.timestamp <= target else None
