"""What a run does with each remote object: the version rules of the seed, as pure functions.

- every version takes only objects under the binding's directory path with its file type, and
  skips an object when a file of the same name, size and ETag was ingested into the dataset
  before (a renamed copy is a new file: the name is compared first);
- 1.6 ingests only STANDARD objects: any other storage class fails the whole run, naming them;
- 1.7 and 1.8 skip GLACIER and DEEP_ARCHIVE objects (listed) and ingest the rest;
- 1.8 lands Append datasets straight in the DLZ (skip-LZ); Reload datasets as 1.7.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from loadbay_ingestion.remote import ARCHIVED, RemoteObject


def directory_prefix(path: str) -> str:
    """`a/b`, `/a/b/` -> `a/b/`; empty -> the whole bucket."""
    stripped = path.strip("/")
    return f"{stripped}/" if stripped else ""


def name_in_dataset(key: str, prefix: str) -> str:
    """An object's name: its key below the directory path."""
    return key[len(prefix) :]


def file_name(name: str) -> str:
    """The file name in the batch folder: the object's base name, with any sub-folders below
    the directory path folded in (`sub/x.csv` -> `sub__x.csv`) so that names stay unique."""
    return name.replace("/", "__")


def matches(key: str, prefix: str, file_type: str) -> bool:
    return key.startswith(prefix) and key.lower().endswith("." + file_type.lower())


def skip_lz(version: str, dataset_type: str) -> bool:
    return version == "1.8" and dataset_type == "append"


@dataclass
class Plan:
    copy: list[RemoteObject] = field(default_factory=list)
    already_copied: list[RemoteObject] = field(default_factory=list)
    skipped: list[tuple[RemoteObject, str]] = field(default_factory=list)
    failed: list[tuple[RemoteObject, str]] = field(default_factory=list)
    failure: str | None = None


def plan_objects(
    objects: Iterable[RemoteObject],
    *,
    prefix: str,
    file_type: str,
    version: str,
    ingested: Collection[tuple[str, int, str]],
    copied_in_run: Collection[str] = (),
) -> Plan:
    plan = Plan()
    candidates = [o for o in objects if matches(o.key, prefix, file_type)]
    if version == "1.6":
        others = [o for o in candidates if o.storage_class != "STANDARD"]
        if others:
            plan.failed = [
                (o, f"storage class {o.storage_class}: version 1.6 ingests only STANDARD objects")
                for o in others
            ]
            listed = ", ".join(f"{o.key} ({o.storage_class})" for o in others)
            plan.failure = (
                f"version 1.6 ingests only objects in the STANDARD storage class; {len(others)}"
                f" object(s) are not, so nothing was ingested: {listed}. Upgrade the connection"
                " to 1.7 to skip archived objects instead"
            )
            return plan
    for o in candidates:
        name = name_in_dataset(o.key, prefix)
        if o.key in copied_in_run:
            plan.already_copied.append(o)
        elif (name, o.size, o.etag) in ingested:
            plan.skipped.append((o, "already ingested: same name, size and ETag"))
        elif o.storage_class in ARCHIVED:
            plan.skipped.append(
                (o, f"storage class {o.storage_class}: restore the object to ingest it")
            )
        else:
            plan.copy.append(o)
    return plan
