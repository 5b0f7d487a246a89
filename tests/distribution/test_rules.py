"""The naming convention and the LSTS rules, on the seed's own examples (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loadbay_distribution.naming import Misnamed, batches, parse_name
from loadbay_distribution.planning import WorkspaceState, continue_after, plan_dataset

LONG_AGO = datetime(2019, 1, 1, tzinfo=UTC)
MODIFIED = datetime(2020, 1, 1, tzinfo=UTC)


def test_names_follow_the_convention() -> None:
    parsed = parse_name("in/Products_20200820120000_inc.csv", ["products"])
    assert (parsed.dataset, parsed.timestamp, parsed.mode, parsed.part) == (
        "products",
        "20200820120000",
        "inc",
        None,
    )
    part = parse_name("order_lines_20200820120000_full_part2.csv.gz", ["order_lines"])
    assert (part.dataset, part.mode, part.part) == ("order_lines", "full", 2)
    assert parse_name("products.zip", ["products"]).mode == "full"  # mode defaults to full
    assert parse_name("products_20200820120000.parquet", ["products"]).mode == "full"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("products_20200820120000_inc.txt", "unsupported file type"),
        ("products_inc.csv", "needs a yyyyMMddHHmmss timestamp"),
        ("products_20201340120000_inc.csv", "not a valid"),
        ("prods_20200820120000_inc.csv", "no dataset 'prods'"),
        ("products_20200820120000_weekly.csv", "no dataset 'products_20200820120000_weekly'"),
    ],
)
def test_misnamed_files_are_reported_not_guessed(name: str, reason: str) -> None:
    with pytest.raises(Misnamed, match=reason):
        parse_name(name, ["products"])


def test_batches_group_parts_and_report_conflicts() -> None:
    objects = [
        ("p_20200101000000_inc_part1.csv", MODIFIED),
        ("p_20200101000000_inc_part2.csv", MODIFIED),
        ("p_20200102000000_inc.csv", MODIFIED),
        ("p_20200102000000_full.csv", MODIFIED),  # same timestamp twice
        ("p.csv", MODIFIED),  # undated among several files
        ("junk.csv", MODIFIED),
    ]
    found, problems = batches(objects, ["p"])
    assert [(b.timestamp, b.keys) for b in found["p"]] == [
        ("20200101000000", ("p_20200101000000_inc_part1.csv", "p_20200101000000_inc_part2.csv"))
    ]
    reasons = {p.key: p.reason for p in problems}
    assert "timestamps must strictly increase" in reasons["p_20200102000000_full.csv"]
    assert "each needs a timestamp" in reasons["p.csv"]
    assert "no dataset" in reasons["junk.csv"]
    single, problems = batches([("p.csv", MODIFIED)], ["p"])
    assert single["p"][0].timestamp == "20200101000000" and problems == []


PRODUCTS = [
    ("Products_20200820120000_inc.csv", MODIFIED),  # file 1
    ("Products_20200821120000_inc.csv", MODIFIED),  # file 2
    ("Products_20200821130000_inc.csv", MODIFIED),  # file 3
    ("Products_20200821133000_inc.csv", MODIFIED),  # file 4
]


def test_the_products_example_one_file_per_run() -> None:
    files = batches(PRODUCTS, ["products"])[0]["products"]
    after_file_2 = WorkspaceState("ws", LONG_AGO, lsts="20200821120000")
    plan = plan_dataset(files, [after_file_2])
    assert plan.first["ws"].timestamp == "20200821130000"  # file 3, not 4
    after_file_3 = WorkspaceState("ws", LONG_AGO, lsts="20200821130000")
    assert plan_dataset(files, [after_file_3]).first["ws"].timestamp == "20200821133000"
    new = WorkspaceState("new", datetime(2020, 8, 21, 12, 30, tzinfo=UTC))
    assert plan_dataset(files, [new]).first["new"].timestamp == "20200821130000"
    assert new.mode_for(files[2]) == "full"  # a workspace's first load is full


def test_the_two_workspaces_example_catches_up_within_the_run() -> None:
    t = ["20300101000000", "20300102000000", "20300103000000", "20300104000000"]
    files = batches([(f"d_{x}_inc.csv", MODIFIED) for x in t[1:]], ["d"])[0]["d"]
    w1 = WorkspaceState("w1", LONG_AGO, lsts=t[1])
    w2 = WorkspaceState("w2", LONG_AGO, lsts=t[0], failure_streak=1, last_failed_ts=t[1])
    plan = plan_dataset(files, [w1, w2])
    assert plan.first["w1"].timestamp == t[2] and plan.first["w2"].timestamp == t[1]
    assert plan.target == t[2] and plan.catch_up == {"w2"}
    w2_after = WorkspaceState("w2", LONG_AGO, lsts=t[1])
    assert continue_after(files, w2_after, plan.target).timestamp == t[2]  # type: ignore[union-attr]
    w2_done = WorkspaceState("w2", LONG_AGO, lsts=t[2])
    assert continue_after(files, w2_done, plan.target) is None  # T3 waits for the next run


def test_three_failures_stop_loading_until_a_newer_file_arrives() -> None:
    t = ["20300101000000", "20300102000000", "20300103000000", "20300104000000", "20300105"]
    stuck = WorkspaceState("w2", LONG_AGO, lsts=t[0], failure_streak=3, last_failed_ts=t[3])
    files = batches([(f"d_{x}_inc.csv", MODIFIED) for x in t[1:4]], ["d"])[0]["d"]
    assert plan_dataset(files, [stuck]).first == {}
    recovery = batches([("d_20300105000000_inc.csv", MODIFIED)], ["d"])[0]["d"]
    assert plan_dataset(recovery, [stuck]).first["w2"].timestamp == "20300105000000"


def test_a_lone_workspace_catches_up_through_the_listing_and_counts_against_the_newest() -> None:
    t = ["20300101000000", "20300102000000", "20300103000000", "20300104000000"]
    files = batches([(f"d_{x}_inc.csv", MODIFIED) for x in t[1:]], ["d"])[0]["d"]
    lone = WorkspaceState("w2", LONG_AGO, lsts=t[0], failure_streak=1, last_failed_ts=t[1])
    plan = plan_dataset(files, [lone])
    assert plan.first["w2"].timestamp == t[1]
    assert plan.target == t[3] and plan.newest == t[3]
    assert [b.timestamp for b in plan.later] == t[2:]
    after_t1 = WorkspaceState("w2", LONG_AGO, lsts=t[1])
    assert continue_after(list(plan.later), after_t1, plan.target).timestamp == t[2]  # type: ignore[union-attr]
    # With another workspace loading T2, catching up stops there (the seed's example).
    w1 = WorkspaceState("w1", LONG_AGO, lsts=t[1])
    both = plan_dataset(files, [w1, lone])
    assert both.target == t[2] and [b.timestamp for b in both.later] == [t[2]]
