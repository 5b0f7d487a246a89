"""Source file names: `{dataset}_{timestamp}_{load_mode}_{part}.{ext}` (GoodData ADD v2).

- `timestamp` is `yyyyMMddHHmmss`; mandatory for `inc`. For `full`, a dataset's single file
  may leave it out; when a dataset has several files, all must carry one.
- `load_mode` is `full` or `inc`; left out, it is `full`.
- `part` is `partN` for a split file: all parts of one timestamp load together.
- `ext`: `.csv`, `.csv.gz` / `.gz`, `.zip`, `.parquet`.
A name that breaks the convention is reported with the reason, never guessed at.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

EXTENSIONS = (".csv.gz", ".parquet", ".csv", ".gz", ".zip")
_PART = re.compile(r"^part([1-9][0-9]*)$")
_TIMESTAMP = re.compile(r"^\d{14}$")


@dataclass(frozen=True)
class SourceFile:
    key: str
    dataset: str
    timestamp: str | None
    mode: str  # full | inc
    part: int | None


@dataclass(frozen=True)
class Batch:
    """One load: a dataset's file (or all parts of it) at one timestamp."""

    dataset: str
    timestamp: str
    mode: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}"


class Misnamed(ValueError):
    pass


def parse_name(key: str, datasets: Iterable[str]) -> SourceFile:
    name = key.rsplit("/", 1)[-1]
    ext = next((e for e in EXTENSIONS if name.lower().endswith(e)), None)
    if ext is None:
        raise Misnamed(f"unsupported file type; use one of {', '.join(EXTENSIONS)}")
    tokens = name[: -len(ext)].split("_")
    part = None
    if len(tokens) > 1 and (match := _PART.match(tokens[-1].lower())):
        part = int(match.group(1))
        tokens.pop()
    mode = None
    if len(tokens) > 1 and tokens[-1].lower() in ("full", "inc"):
        mode = tokens.pop().lower()
    timestamp = None
    if len(tokens) > 1 and _TIMESTAMP.match(tokens[-1]):
        timestamp = tokens.pop()
        try:
            datetime.strptime(timestamp, "%Y%m%d%H%M%S")
        except ValueError as exc:
            raise Misnamed(f"{timestamp} is not a valid yyyyMMddHHmmss timestamp") from exc
    dataset = "_".join(tokens).lower()
    known = {d.lower() for d in datasets}
    if dataset not in known:
        raise Misnamed(
            f"no dataset {dataset!r} (expected {{dataset}}_{{timestamp}}_{{full|inc}}"
            f"[_partN].{{csv|gz|zip|parquet}}; datasets: {', '.join(sorted(known)) or 'none'})"
        )
    mode = mode or "full"
    if mode == "inc" and timestamp is None:
        raise Misnamed("an incremental (inc) file needs a yyyyMMddHHmmss timestamp")
    return SourceFile(key=key, dataset=dataset, timestamp=timestamp, mode=mode, part=part)


def batches(
    objects: Iterable[tuple[str, datetime]], datasets: Iterable[str]
) -> tuple[dict[str, list[Batch]], list[Problem]]:
    """Group source objects (key, last modified) into per-dataset batches in timestamp order,
    and list every object that breaks the convention."""
    known = list(datasets)
    problems: list[Problem] = []
    by_dataset: dict[str, list[tuple[SourceFile, datetime]]] = defaultdict(list)
    for key, modified in objects:
        try:
            parsed = parse_name(key, known)
        except Misnamed as exc:
            problems.append(Problem(key, str(exc)))
            continue
        by_dataset[parsed.dataset].append((parsed, modified))
    result: dict[str, list[Batch]] = {}
    for dataset, files in by_dataset.items():
        undated = [f for f, _ in files if f.timestamp is None]
        if undated and len(files) > 1:
            for f in undated:
                problems.append(Problem(
                    f.key, f"{dataset} has several source files: each needs a timestamp"
                ))  # fmt: skip
            files = [(f, m) for f, m in files if f.timestamp is not None]
        groups: dict[str, list[SourceFile]] = defaultdict(list)
        for f, modified in files:
            # A single full file without a timestamp takes its upload time.
            groups[f.timestamp or modified.strftime("%Y%m%d%H%M%S")].append(f)
        ordered: list[Batch] = []
        for timestamp in sorted(groups):
            group = groups[timestamp]
            modes = {f.mode for f in group}
            parts = [f.part for f in group]
            if len(group) > 1 and (None in parts or len(set(parts)) != len(parts)):
                for f in group:
                    problems.append(Problem(
                        f.key, f"{len(group)} files of {dataset} share timestamp {timestamp}:"
                        " timestamps must strictly increase (split files need distinct partN)"
                    ))  # fmt: skip
                continue
            if len(modes) > 1:
                for f in group:
                    problems.append(Problem(
                        f.key, f"the parts of {dataset} {timestamp} mix full and inc"
                    ))  # fmt: skip
                continue
            keys = tuple(f.key for f in sorted(group, key=lambda f: f.part or 0))
            ordered.append(Batch(dataset, timestamp, modes.pop(), keys))
        result[dataset] = ordered
    return result, problems
