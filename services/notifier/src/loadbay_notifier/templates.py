"""The emails' words: a subject, a plain-text body and an HTML body for each outcome event.

Every value that comes from an event is escaped (`html.escape`) before it goes into HTML, and
folded onto one line before it goes into a subject.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from loadbay_contracts import ReloadFinished, ReloadRejected

# Past this many files a list is cut short ("... and 120 more"): an email is no file listing.
MAX_LISTED_FILES = 50


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


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
    return _render(subject, lead, facts, event.files)


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


def _render(
    subject: str,
    paragraphs: Sequence[str],
    facts: Sequence[tuple[str, str]],
    files: Sequence[str],
) -> RenderedEmail:
    listed, more = files[:MAX_LISTED_FILES], len(files) - MAX_LISTED_FILES
    width = max(len(label) for label, _ in facts) + 1

    text: list[str] = []
    for paragraph in paragraphs:
        text += [paragraph, ""]
    text += [f"{label + ':':<{width}} {value}" for label, value in facts]
    if files:
        text += ["", f"Files ({len(files)}):", *(f"  - {f}" for f in listed)]
        if more > 0:
            text.append(f"  ... and {more} more")
    text += ["", "-- ", "loadbay"]

    esc = html.escape
    body = [f"<p>{esc(p)}</p>" for p in paragraphs]
    body.append("<table>")
    body += [
        f'<tr><th align="left">{esc(label)}</th><td>{esc(value)}</td></tr>'
        for label, value in facts
    ]
    body.append("</table>")
    if files:
        body.append(f"<p>Files ({len(files)}):</p>")
        body.append("<ul>" + "".join(f"<li>{esc(f)}</li>" for f in listed) + "</ul>")
        if more > 0:
            body.append(f"<p>... and {more} more</p>")
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{esc(subject)}</title></head>\n<body>\n"
        + "\n".join(body)
        + '\n<p style="color:#777">loadbay</p>\n</body></html>\n'
    )
    return RenderedEmail(subject=_one_line(subject), text="\n".join(text) + "\n", html=page)


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
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
