"""The request guard's body checks, on their own: JSON depth (against a reference walk of parsed
documents), NUL and surrogate escapes, and time that stays linear on hostile 1 MiB bodies."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from loadbay_platform.request_guard import body_kind, json_problem, json_too_deep
from loadbay_platform.settings import HttpSettings

MiB = 1024 * 1024


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def document(rng: random.Random, levels: int) -> Any:
    """A random document `levels` deep at most, one deepest branch and small side branches."""
    # Strings full of brackets, quotes and backslashes: none of them may count.
    leaves = ["a[b", "]]", '"\\"[', "{x}", "\\", 1, None]
    if levels == 0:
        return rng.choice(leaves)
    children = [document(rng, levels - 1)]
    children += [document(rng, min(levels - 1, 2)) for _ in range(rng.randint(0, 2))]
    rng.shuffle(children)
    if rng.random() < 0.5:
        return children
    keys = ["k[", "}", '"', "v"]
    return {rng.choice(keys) + str(i): child for i, child in enumerate(children)}


def test_depth_matches_the_parsed_documents() -> None:
    rng = random.Random(7)
    for _ in range(500):
        doc = document(rng, rng.randint(0, 90))
        body = json.dumps(doc).encode()
        for limit in (1, 5, 64):
            assert json_too_deep(body, limit) == (depth(doc) > limit), body[:300]


@pytest.mark.parametrize(
    ("body", "too_deep"),
    [
        (b"[" * 64 + b"]" * 64, False),
        (b"[" * 65 + b"]" * 65, True),
        (b"[" * 200_000, True),  # truncated: a parser would still recurse that deep
        (b'["' + b"[" * 1000 + b'"]', False),
        (b'"' + b"\\" + b"[" * 1000, False),  # an unterminated string to the end
        (b"]" * 1000 + b"[]", False),  # invalid at once, never deep
    ],
)
def test_depth_edges(body: bytes, too_deep: bool) -> None:
    assert json_too_deep(body, 64) is too_deep


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (rb'{"a": "\u0000"}', "NUL character"),
        (rb'{"a": "\\\u0000"}', "NUL character"),  # an escaped backslash, then a NUL
        (rb'{"a": "\\u0000"}', None),  # the text \u0000
        (rb'{"a": "\ud800"}', "unpaired UTF-16 surrogate (\\ud800)"),
        (rb'{"a": "\uDC00x"}', "unpaired UTF-16 surrogate (\\uDC00)"),
        (rb'{"a": "\ud800\ud800\udc00"}', "unpaired UTF-16 surrogate (\\ud800)"),
        (rb'{"a": "\ud83d\ude00"}', None),  # a pair: one character
        (rb'{"a": "\\ud800"}', None),
    ],
)
def test_nul_and_surrogate_escapes(body: bytes, problem: str | None) -> None:
    found = json_problem(body, HttpSettings())
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


HOSTILE = {
    "pairs": b"[" + b"[]," * (MiB // 3) + b"[]]",
    "64-deep, repeated": (b"[" * 64 + b"]" * 64) * (MiB // 128),
    "empty strings": b"[" + b'"",' * (MiB // 3) + b'""]',
    "escaped quotes, unterminated": b'"' + b'\\"' * (MiB // 2 - 1),
    "quotes": b'"' * MiB,
    "backslashes": b"\\" * MiB,
    "escape look-alikes": b'"' + b"\\\\u0000" * (MiB // 7) + b'"',
    "surrogate pairs": b'"' + b"\\ud83d\\ude00" * (MiB // 12) + b'"',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_checking_a_hostile_mebibyte_stays_fast(name: str) -> None:
    started = time.process_time()
    json_problem(HOSTILE[name], HttpSettings())
    # About 0.1 s on an idle machine at worst; a quadratic scan would take minutes.
    assert time.process_time() - started < 2


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("multipart/form-data; boundary=x", "multipart"),
        ("application/x-www-form-urlencoded", "form"),
        ("application/octet-stream", "binary"),
        ("application/json; charset=utf-8", "json"),
        ("text/plain", "json"),
        ("", "json"),
    ],
)
def test_body_kinds(content_type: str, kind: str) -> None:
    assert body_kind(content_type) == kind
