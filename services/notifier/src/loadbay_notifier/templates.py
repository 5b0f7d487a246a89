"""The emails' words: a subject, a plain-text body and an HTML body for each outcome event.

The layout is two Jinja2 templates (email_templates/email.txt and email.html); the HTML one is
autoescaped, so every value that comes from an event is escaped there. Values are folded onto
one line before they go into a subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import jinja2

from loadbay_contracts import (
    DistributionFinished,
    GraphLoadFinished,
    IngestionFinished,
    ReloadFinished,
    ReloadRejected,
)

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("loadbay_notifier", "email_templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)
_TEXT = _TEMPLATES.get_template("email.txt")
_HTML = _TEMPLATES.get_template("email.html")

# Past this many files (or failures, problems) a list is cut short ("... and 120 more"): an
# email is no file listing.
MAX_LISTED_FILES = 50
# An item longer than this (a failure reason with a whole stack trace) is cut short too.
MAX_ITEM_CHARS = 1000

# What to do for a workspace whose loads failed three times in a row (for three successive
# timestamps): it is no longer loaded automatically, so its missing data is loaded by hand
# (GoodData ADD v2, "Loading Data to a Workspace after Three Successive Load Failures").
MANUAL_RECOVERY_STEPS = (
    "Export the data the workspace is missing for the dataset (every timestamp since its last"
    " successful load, up to the newest source file, inclusive) from the database to one"
    " source file, and give it a new timestamp, later than all of them.",
    "Upload the source file to the object storage.",
    "Delete the old source files that failed to load from the object storage.",
    "Run the distribution again to load the source file with the new timestamp into the workspace.",
)

# A graph load's Neptune status in words (Neptune Loader Error and Feed Messages); a status
# not listed here is worded from its code.
GRAPH_LOAD_COMPLETED = "LOAD_COMPLETED"
GRAPH_LOAD_STATUS_WORDS = {
    "LOAD_COMPLETED": "completed",
    "LOAD_FAILED": "failed",
    "LOAD_CANCELLED_BY_USER": "cancelled by the user",
    "LOAD_CANCELLED_DUE_TO_ERRORS": "cancelled because of errors",
    "LOAD_UNEXPECTED_ERROR": "failed with an unexpected error",
    "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED": "not run, dependency not satisfied",
    "LOAD_FAILED_INVALID_REQUEST": "failed, the request was invalid",
    "LOAD_S3_READ_ERROR": "failed reading from S3",
    "LOAD_S3_ACCESS_DENIED_ERROR": "failed, access to S3 was denied",
    "LOAD_DATA_FAILED_DUE_TO_FEED_MODIFIED_OR_DELETED": "failed, a file changed or was deleted",
    "LOAD_DATA_DEADLOCK": "rolled back after a deadlock",
    "LOAD_COMMITTED_W_WRITE_CONFLICTS": "committed with write conflicts",
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class _Section:
    """A list after the facts: counted and cut short past MAX_LISTED_FILES, or, for steps,
    numbered and always whole."""

    heading: str
    items: Sequence[str]
    steps: bool = False


def render_reload_finished(event: ReloadFinished) -> RenderedEmail:
    dataset = f"{event.domain}/{event.dataset_name}"
    facts = [
        ("Dataset", dataset),
        ("Execution", event.execution_id),
        ("Triggered by", event.triggered_by),
        ("Started", _when(event.started_at)),
        ("Finished", _when(event.finished_at)),
        ("Duration", _duration(event.started_at, event.finished_at)),
    ]
    if event.status == "succeeded":
        subject = f"[loadbay] Reload of {dataset} succeeded"
        lead = [
            f"The reload of dataset {dataset} succeeded: it now holds exactly the rows of the"
            f" {_count(len(event.files), 'file')} below.",
        ]
        facts[2:2] = [
            ("Rows loaded", f"{event.rows:,}"),
            ("Bytes loaded", f"{event.bytes:,}"),
        ]
    else:
        subject = f"[loadbay] Reload of {dataset} failed"
        lead = [
            f"The reload of dataset {dataset} failed, and the dataset was left as it was.",
            f"Reason: {event.reason or 'no reason was given'}",
            f"The {_count(len(event.files), 'file')} of this reload are back in pending: fix"
            " the file named in the reason, upload it again, and process the pending files.",
        ]
    return _render(subject, lead, facts, [_Section("Files", event.files)])


def render_reload_rejected(event: ReloadRejected) -> RenderedEmail:
    dataset = f"{event.domain}/{event.dataset_name}"
    subject = f"[loadbay] Reload of {dataset} not started: a reload is running"
    lead = [
        f"A reload of dataset {dataset} was requested by the _SUCCESS file of batch"
        f" {event.batch}, but a reload of the dataset was already running"
        f" (execution {event.running_execution_id}), so nothing was started.",
        f"Reason: {event.reason}",
        "The batch's files stay pending: process them once the running reload has finished.",
    ]
    facts = [
        ("Dataset", dataset),
        ("Batch", event.batch),
        ("Running execution", event.running_execution_id),
    ]
    return _render(subject, lead, facts, ())


def render_distribution_finished(event: DistributionFinished) -> RenderedEmail:
    """One email per run, whatever its outcome: failed loads, the workspaces that need manual
    recovery (with the steps) and the run's problems each get their own list."""
    product = event.data_product
    outcome = {
        "succeeded": "succeeded",
        "failed": "failed",
        "partially_failed": "partially failed",
    }[event.status]
    failed, recovery, problems = event.failures, event.needs_recovery, event.problems
    recovery_workspaces = sorted({entry.split("/", 1)[0] for entry in recovery})

    notes = []
    if recovery:
        notes.append(
            f"{_count(len(recovery_workspaces), 'workspace')} need"
            f"{'s' if len(recovery_workspaces) == 1 else ''} manual recovery"
        )
    if problems:
        notes.append(_count(len(problems), "problem"))
    subject = f"[loadbay] Distribution of {product} {outcome}"
    if notes:
        subject += ": " + ", ".join(notes)

    run = f"The distribution run {event.run_id} of data product {product}"
    failed_of = f"{_count(len(failed), 'load')} of {event.loads} into client workspaces failed"
    if event.status == "succeeded" and event.loads == 0:
        lead = [f"{run} succeeded: there was nothing to load into the client workspaces."]
    elif event.status == "succeeded":
        lead = [
            f"{run} succeeded: all {_count(event.loads, 'load')} into client workspaces succeeded."
        ]
    elif event.status == "partially_failed":
        lead = [f"{run} partially failed: {failed_of}, the others succeeded."]
    else:
        lead = [f"{run} failed: {failed_of}." if failed else f"{run} failed."]
    if failed:
        lead.append(
            "Unless it needs manual recovery, a workspace whose load failed keeps its last load"
            " timestamp, and the next run tries the failed source file again, then the newer"
            " ones."
        )
    if recovery:
        n = len(recovery_workspaces)
        lead.append(
            f"{_count(n, 'workspace')} failed to load three times in a row (for three"
            f" successive timestamps) and {'is' if n == 1 else 'are'} no longer loaded"
            " automatically: load the missing data by hand, following the steps below."
        )
    if problems:
        lead.append(
            "The run also reported problems, such as misnamed source files or client ids that"
            " match no workspace: see the list below."
        )

    facts = [
        ("Data product", product),
        ("Data product id", event.data_product_id),
        ("Run", event.run_id),
        ("Status", outcome),
        ("Loads", f"{event.loads:,}"),
        ("Failed loads", f"{len(failed):,}"),
        ("Started", _when(event.started_at)),
        ("Finished", _when(event.finished_at)),
        ("Duration", _duration(event.started_at, event.finished_at)),
    ]
    sections = [
        _Section("Failed loads", failed),
        _Section("Needing manual recovery", recovery),
    ]
    if recovery:
        sections.append(
            _Section("Manual recovery steps, for each of them", MANUAL_RECOVERY_STEPS, True)
        )
    sections.append(_Section("Problems", problems))
    return _render(subject, lead, facts, sections)


def render_ingestion_finished(event: IngestionFinished) -> RenderedEmail:
    """One email per ingestion run from an S3 connection into a dataset, whatever its outcome:
    on failure the reason comes first; failed, skipped (each with why) and copied objects get
    their own lists."""
    dataset, connection = event.dataset, event.connection
    copied, skipped, failed = event.copied, event.skipped, event.failed
    run = f"The ingestion run {event.run_id} from S3 connection {connection} into dataset {dataset}"

    subject = f"[loadbay] Ingestion from {connection} into {dataset} {event.status}"
    if event.status == "succeeded":
        notes = [f"{_count(len(copied), 'object')} copied"]
        notes += [f"{len(skipped):,} skipped"] if skipped else []
        notes += [f"{len(failed):,} failed"] if failed else []
        subject += ": " + ", ".join(notes)

    copied_what = f"{_count(len(copied), 'object')} ({event.bytes_copied:,} bytes)"
    if event.status == "failed":
        # The reason first: it is what the reader has to act on.
        lead = [
            f"Reason: {event.reason or 'no reason was given'}",
            f"{run} failed; {copied_what} had been copied before it ended."
            if copied
            else f"{run} failed; no object was copied.",
        ]
    elif copied:
        lead = [f"{run} succeeded: {copied_what} copied."]
    else:
        lead = [f"{run} succeeded, but copied no object."]
    if failed:
        lead.append(
            f"{_count(len(failed), 'object')} could not be copied: each is listed below with why."
        )
    if skipped:
        lead.append(
            f"{_count(len(skipped), 'object')} {'was' if len(skipped) == 1 else 'were'} skipped"
            " and not copied (for instance unchanged, with the same name, size and ETag, or in an"
            " archive storage class): each is listed below with why."
        )

    facts = [
        ("Dataset", dataset),
        ("Connection", connection),
        ("Run", event.run_id),
        ("Version", event.version),
        ("Status", event.status),
        ("Objects copied", f"{len(copied):,}"),
        ("Objects skipped", f"{len(skipped):,}"),
        ("Objects failed", f"{len(failed):,}"),
        ("Bytes copied", f"{event.bytes_copied:,}"),
        ("Skip LZ", "yes" if event.skip_lz else "no"),
        ("Started", _when(event.started_at)),
        ("Finished", _when(event.finished_at)),
        ("Duration", _duration(event.started_at, event.finished_at)),
    ]
    sections = [
        _Section("Failed objects", failed),
        _Section("Skipped objects", skipped),
        _Section("Copied objects", copied),
    ]
    return _render(subject, lead, facts, sections)


def render_graph_load_finished(event: GraphLoadFinished) -> RenderedEmail:
    """One email per bulk-loader job, whatever its outcome: Neptune's counters, and the first
    errors; on failure, that what loaded before it stays (Neptune loads are not atomic) and
    where to read all the errors."""
    load_id, source = event.load_id, event.source
    errors = event.parsing_errors + event.datatype_mismatch_errors + event.insert_errors
    words = GRAPH_LOAD_STATUS_WORDS.get(event.status) or _status_words(event.status)
    load = f"The graph load {load_id} of {source} ({event.format})"
    all_errors = f"GET /loader/{load_id}?errors=TRUE lists all its errors, a page at a time"
    all_errors += " (page, errorsPerPage)"
    all_errors += "; the first are listed below." if event.first_errors else "."
    records = (
        f"{_count(event.total_records, 'record')} ({event.total_duplicates:,} duplicates,"
        f" {_count(errors, 'error')})"
    )

    if event.status == GRAPH_LOAD_COMPLETED:
        if errors:
            words += f" with {_count(errors, 'error')}"
        lead = [f"{load} completed: {records}."]
        if errors:
            lead.append(
                "The records in error may be missing from the graph, or loaded without the"
                f" values in error. {all_errors}"
            )
    elif event.status == "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED":
        lead = [
            f"{load} did not run: a load it depends on did not complete, so nothing was"
            " loaded. Start it again once the loads it depends on have completed."
        ]
    else:
        cut = "it was cancelled" if event.status == "LOAD_CANCELLED_BY_USER" else "the error"
        lead = [
            f"{load} ended: {words} ({event.status}), after {records}.",
            f"Neptune loads are not atomic: the data loaded before {cut} stays in the graph,"
            " it is not rolled back.",
            all_errors,
        ]
    subject = f"[loadbay] Graph load {load_id[:8]} of {source}: {words}"

    facts = [
        ("Load id", load_id),
        ("Source", source),
        ("Format", event.format),
        ("Status", event.status),
        ("Total records", f"{event.total_records:,}"),
        ("Total duplicates", f"{event.total_duplicates:,}"),
        ("Parsing errors", f"{event.parsing_errors:,}"),
        ("Datatype mismatch errors", f"{event.datatype_mismatch_errors:,}"),
        ("Insert errors", f"{event.insert_errors:,}"),
    ]
    if event.started_at is not None:
        facts.append(("Started", _when(event.started_at)))
    facts.append(("Finished", _when(event.finished_at)))
    if event.started_at is not None:
        facts.append(("Duration", _duration(event.started_at, event.finished_at)))
    return _render(subject, lead, facts, [_Section("First errors", event.first_errors)])


def _status_words(status: str) -> str:
    """LOAD_SOMETHING_ELSE -> "something else"."""
    return status.removeprefix("LOAD_").replace("_", " ").lower() or "unknown status"


def _render(
    subject: str,
    paragraphs: Sequence[str],
    facts: Sequence[tuple[str, str]],
    sections: Sequence[_Section],
) -> RenderedEmail:
    shown = []
    for section in sections:
        if section.items:
            listed, more = _listed(section.items)
            shown.append(
                {
                    "heading": section.heading,
                    "steps": section.steps,
                    "entries": section.items,  # not "items": Jinja2 would find dict.items
                    "listed": listed,
                    "more": more,
                }
            )
    values = {
        "subject": subject,
        "paragraphs": paragraphs,
        "facts": facts,
        "sections": shown,
        "width": max(len(label) for label, _ in facts) + 1,
    }
    return RenderedEmail(
        subject=_one_line(subject),
        text=_TEXT.render(values),
        html=_HTML.render(values),
    )


def _listed(items: Sequence[str]) -> tuple[list[str], int]:
    """The items to show, each on one line and cut short if long, and how many are left out."""
    listed = []
    for item in items[:MAX_LISTED_FILES]:
        line = _one_line(item)
        if len(line) > MAX_ITEM_CHARS:
            line = line[: MAX_ITEM_CHARS - 3] + "..."
        listed.append(line)
    return listed, len(items) - len(listed)


def _one_line(text: str) -> str:
    # A line break in a header would end it (or inject another).
    return " ".join(text.split())


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _duration(started: datetime, finished: datetime) -> str:
    seconds = max((finished - started).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {secs} s" if hours else f"{minutes} min {secs} s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n:,} {noun}s"
