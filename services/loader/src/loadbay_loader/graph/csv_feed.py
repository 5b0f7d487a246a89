"""Gremlin CSV (``format: csv``) and openCypher CSV (``format: opencypher``) feeds.

Python reads the header line, turns it into a typed column plan (:class:`VertexPlan` or
:class:`EdgePlan`, see plans.py), and then only cuts the byte stream into batches of
about :data:`BATCH_BYTES` at record boundaries (a line break after an even number of quote
characters, which is how PostgreSQL splits CSV records too). Each batch is streamed unchanged
into ``COPY`` and merged set-based in its own transaction (vertex_store.py,
edge_store.py), so what loaded before an error stays, and ``cancelled()`` is checked
between batches. No batch is held in memory: it streams from the feed's prefetched chunks into
COPY, noting on the way whether a field may need trimming.

Only when COPY rejects a batch (an unterminated quote, a record with too few or too many
fields, bytes that are not UTF-8, or a ``\\.`` line, which PostgreSQL before 18 takes for the
end of the data) is it read again from the feed and loaded in slices of :data:`SLICE_BYTES`;
a slice COPY rejects too is parsed here, record by record, with PostgreSQL's CSV rules: the
bad records become PARSING_ERRORs with their record number and the good ones are staged and
merged as usual. After an unterminated quote the parser resumes at the next line.

A header problem is one PARSING_ERROR (record 0) naming the file, and nothing of it loads.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from loadbay_loader.graph import edge_store, staging_store, vertex_store
from loadbay_loader.graph.csv_header import HeaderError, Plan, feed_kind, parse_header
from loadbay_loader.graph.csv_stream import (
    Batch,
    Batches,
    WholeLines,
    parse_batch,
    read_again,
    read_header,
    without_trailing_breaks,
)
from loadbay_loader.graph.feeds import (
    Chunks,
    ErrorSink,
    FeedCounts,
    FeedError,
    FeedResult,
    LoadOptions,
)
from loadbay_loader.graph.plans import BatchOutcome, MergeSettings, Policy, VertexPlan
from loadbay_loader.graph.staging_store import Staged, Staging
from loadbay_loader.streaming import limits
from loadbay_loader.streaming.objects import prefetch

__all__ = [
    "BATCH_BYTES",
    "HeaderError",
    "feed_kind",
    "load_csv_feed",
    "parse_header",
]

# A batch is cut at the first record boundary after this many bytes. Large batches make for
# few transactions and few index rebuilds (index_store.py); no batch is held in memory.
BATCH_BYTES = 64 << 20
SLICE_BYTES = 1 << 20  # a batch COPY rejects is loaded again in slices this large


class _CopyRejected(Exception):
    """COPY refused the batch's bytes: load it in slices, and parse the bad ones in Python."""


@dataclass(frozen=True)
class _Feed:
    """What every batch of one feed is loaded with."""

    conn: asyncpg.Connection
    st: Staging
    plan: Plan
    settings: MergeSettings
    reread: Callable[[int, int], AsyncIterator[bytes]]  # (start, length) of the data, again


async def _merge(feed: _Feed, staged: Staged) -> BatchOutcome:
    if isinstance(feed.plan, VertexPlan):
        return await vertex_store.merge_vertices(
            feed.conn, feed.st, feed.plan, feed.settings, staged
        )
    return await edge_store.merge_edges(feed.conn, feed.st, feed.plan, feed.settings, staged)


async def _load_batch(feed: _Feed, batch: Batch) -> tuple[BatchOutcome, int]:
    """Load one batch in one transaction; returns its outcome and number of record slots.
    A batch that COPY rejects is read again and loaded in slices of SLICE_BYTES, each in its
    own transaction; a rejected slice is parsed here, record by record."""
    assert batch.source_iter is not None
    conn = feed.conn
    try:
        async with conn.transaction():
            await staging_store.begin_batch(conn)
            try:
                rows = await staging_store.stage_copy(conn, feed.st, batch.source_iter)
            except asyncpg.DataError as exc:
                raise _CopyRejected from exc
            await batch.drain()
            if batch.end_marker:
                raise _CopyRejected
            # what the batch's bytes held is known once they are all read
            staged = Staged(rows, parse_errors=False, spaced=batch.spaced)
            return await _merge(feed, staged), rows
    except _CopyRejected:
        pass
    await batch.drain()
    if not batch.keep:
        return await _load_slices(feed, batch)
    records, parse_errors, slots = parse_batch(batch.data(), feed.plan.width)
    async with conn.transaction():
        await staging_store.begin_batch(conn)
        staged = await staging_store.stage_records(conn, feed.st, records, parse_errors)
        outcome = await _merge(feed, staged)
    return outcome, slots


async def _load_slices(feed: _Feed, batch: Batch) -> tuple[BatchOutcome, int]:
    total = BatchOutcome()
    slots = 0
    data = feed.reread(batch.start, batch.size)
    try:
        slices = Batches(data, b"", SLICE_BYTES, keep=True)
        while (piece := await slices.next()) is not None:
            outcome, n = await _load_batch(feed, piece)
            total.errors.extend(
                (slots + rec, code, message) for rec, code, message in outcome.errors
            )
            _add(total.counts, outcome.counts)
            slots += n
            if outcome.stopped:
                total.stopped = True
                break
    finally:
        with contextlib.suppress(Exception):
            await data.aclose()  # type: ignore[attr-defined]
    return total, slots


def _add(total: FeedCounts, part: FeedCounts) -> None:
    total.total_records += part.total_records
    total.total_duplicates += part.total_duplicates
    total.parsing_errors += part.parsing_errors
    total.datatype_mismatch_errors += part.datatype_mismatch_errors
    total.insert_errors += part.insert_errors


async def load_csv_feed(
    pool: asyncpg.Pool,
    chunks: Chunks,
    *,
    uri: str,
    options: LoadOptions,
    errors: ErrorSink,
    cancelled: Callable[[], Awaitable[bool]],
) -> FeedResult:
    """Load one CSV feed into the graph store: a Gremlin vertex or edge file, or an
    openCypher node or relationship file (`options.format` says which syntax)."""
    result = FeedResult()
    counts = result.counts
    max_record = limits.current().max_record_bytes
    fetched = prefetch(chunks())
    lines = WholeLines(without_trailing_breaks(fetched), max_record)
    stream = aiter(lines)
    try:
        try:
            try:
                names, head, data_offset = await read_header(stream)
            except HeaderError:
                if lines.overlong:
                    raise HeaderError(
                        f"no end of the header line in the first {max_record} bytes"
                    ) from None
                raise
            plan = parse_header(names, options)
        except HeaderError as exc:
            await errors.add(FeedError("PARSING_ERROR", f"{uri}: header: {exc}", uri, 0))
            counts.parsing_errors += 1
            result.stopped_on_error = options.fail_on_error
            return result
        if options.format == "opencypher":
            policy: Policy = "keep"
        else:
            policy = "replace" if options.update_single_cardinality_properties else "error"
        settings = MergeSettings(policy, options.fail_on_error, options.allow_empty_strings)
        batches = Batches(stream, head, BATCH_BYTES)
        base = 0

        def reread(start: int, length: int) -> AsyncIterator[bytes]:
            return read_again(chunks, data_offset + start, length)

        async with pool.acquire() as conn:
            st = await staging_store.create_staging(conn, plan.width)
            feed = _Feed(conn, st, plan, settings, reread)
            try:
                while not await cancelled() and (batch := await batches.next()) is not None:
                    outcome, slots = await _load_batch(feed, batch)
                    for rec, code, message in outcome.errors:
                        await errors.add(FeedError(code, message, uri, base + rec))
                    _add(counts, outcome.counts)
                    base += slots
                    if outcome.stopped:
                        result.stopped_on_error = True
                        break
                else:
                    if lines.overlong and not await cancelled():
                        message = (
                            f"{uri}: record {base + 1} has a line longer than {max_record} bytes"
                            " (LOADBAY_LOADER_MAX_RECORD_BYTES); the rest of the file is not read"
                        )
                        await errors.add(FeedError("PARSING_ERROR", message, uri, base + 1))
                        counts.parsing_errors += 1
                        result.stopped_on_error = options.fail_on_error
            finally:
                await staging_store.drop_staging(conn, st)
    finally:
        for iterator in (stream, fetched):
            with contextlib.suppress(Exception):
                await iterator.aclose()  # type: ignore[attr-defined]
    return result
