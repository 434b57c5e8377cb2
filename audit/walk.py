"""Walking the sealed events in chain order, in one process or split across several.

``walk`` checks everything that can be checked inside a range of sequence numbers: each
event's hash against its content, each link to the event before it, gaps, and the hashes
the checkpoints signed. ``audit.verify`` joins the ranges (the link and the gap at each
boundary) and adds what only the whole chain can tell (its start and its tail).
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from django.db import connection, connections, transaction
from django.db.models import Max, Min

from audit import keys
from audit.chain import LINK_FIELDS, LINK_ROW_PATHS, ROW_FIELDS, event_hash
from audit.models import ChainLink, SecurityEvent

CHUNK_SIZE = 20_000
# Ranges shorter than this are not worth a process of their own.
MIN_SPAN = 50_000

# On PostgreSQL the rows come with times already in canonical form and details as text:
# the database formats them faster than Python parses and re-formats them (same bytes; the
# tests seal through the ORM and verify through this).
_PG_COLUMNS = {
    "id": "l.event_id",
    "sealed_at": """to_char(l.sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
    "created_at": """to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
    "source_ip": "host(e.source_ip)",
    "details": "e.details::text",
}


# The links in sequence order (their key's index), each event looked up by its id: a plan
# that streams. Left to itself PostgreSQL hashed one table, joined, and sorted all 1,000,000
# joined rows on disk before the first one came out (docs/benchmarks.md).
_STREAMING_PLAN = ("enable_hashjoin", "enable_mergejoin", "enable_sort")


@dataclass(frozen=True)
class Problem:
    kind: str  # stable code: content_changed, broken_link, sequence_gap, missing_prefix, truncated_tail, ...
    message: str
    sequence: int | None = None


@dataclass
class Span:
    """What a walk over sequence numbers ``low``..``high`` found."""

    low: int
    high: int
    first_sequence: int | None = None
    first_id: int | None = None
    first_previous: str = ""
    last_sequence: int | None = None
    last_hash: str = ""
    events: int = 0
    problems: list[Problem] = field(default_factory=list)  # the first ``max_problems``, in chain order
    problem_count: int = 0
    max_problems: int = 20

    def add(self, kind: str, message: str, sequence: int) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(kind, message, sequence))


def checkpoint_label(data: dict) -> str:
    where = data.get("source") or f"checkpoint #{data.get('id')}"
    return f"{where} ({data.get('kind')}, sequence {data.get('sequence')}, {data.get('created_at')})"


def gap_message(after: int, before: int) -> str:
    missing = before - after - 1
    numbers = f"{after + 1}" + (f"-{before - 1}" if missing > 1 else "")
    return f"sequence {numbers} missing: {missing} event(s) deleted between {after} and {before}"


@contextmanager
def chain_snapshot() -> Iterator[str | None]:
    """On PostgreSQL, an exported snapshot that every read of one verification shares (in
    this process and in the ``--jobs`` processes), held open until the block ends: the
    checkpoints, the chain's bounds and its events are then one moment of the log, so a
    retention run or a checkpoint committed meanwhile cannot make them disagree (a dropped
    prefix without its retention checkpoint, a checkpoint past the tail). None elsewhere,
    or inside a transaction the caller already holds (its snapshot is the one read)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield None
        return
    holder = connection.get_new_connection(connection.get_connection_params())
    try:
        holder.autocommit = True
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield holder.execute("SELECT pg_export_snapshot()").fetchone()[0]
    finally:
        holder.close()


def in_snapshot(snapshot: str | None):
    """A read-only transaction that sees ``snapshot`` (from ``chain_snapshot``)."""
    if snapshot is None:
        return nullcontext()
    if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    return _snapshot_transaction(snapshot)


@contextmanager
def _snapshot_transaction(snapshot: str) -> Iterator[None]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        yield


def sequence_bounds() -> tuple[int, int] | None:
    bounds = ChainLink.objects.aggregate(low=Min("sequence"), high=Max("sequence"))
    return None if bounds["low"] is None else (bounds["low"], bounds["high"])


def _rows(low: int, high: int, chunk_size: int) -> Iterator[tuple]:
    """Sealed events with ``low`` <= sequence <= ``high`` in sequence order (``ROW_FIELDS``):
    each link with its event. A link whose event was deleted (or an event whose link was)
    is left out, so it shows as a gap."""
    if connection.vendor != "postgresql":
        links = ChainLink.objects.filter(sequence__range=(low, high)).order_by("sequence")
        yield from links.values_list(*LINK_ROW_PATHS).iterator(chunk_size=chunk_size)
        return
    quote = connection.ops.quote_name
    table_of = {name: "l" for name in (*LINK_FIELDS, "hash")}
    columns = ", ".join(_PG_COLUMNS.get(name) or f"{table_of.get(name, 'e')}.{quote(name)}" for name in ROW_FIELDS)
    links_table, events_table = quote(ChainLink._meta.db_table), quote(SecurityEvent._meta.db_table)
    query = (
        f"SELECT {columns} FROM {links_table} l JOIN {events_table} e ON e.id = l.event_id "  # noqa: S608 - quoted table names
        "WHERE l.sequence BETWEEN %s AND %s ORDER BY l.sequence"
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            for setting in _STREAMING_PLAN:
                cursor.execute(f"SET LOCAL {setting} TO off")
        with connection.chunked_cursor() as cursor:
            cursor.execute(query, [low, high])
            while rows := cursor.fetchmany(chunk_size):
                yield from rows
        with connection.cursor() as cursor:
            for setting in _STREAMING_PLAN:
                cursor.execute(f"SET LOCAL {setting} TO DEFAULT")


def walk(low: int, high: int, by_sequence: dict[int, list[dict]], *, chunk_size: int, max_problems: int) -> Span:
    """Check every event from ``low`` to ``high``; the first one's link is left to the caller."""
    span = Span(low=low, high=high, max_problems=max_problems)
    hmac_keys = keys.hmac_keys()
    expected_sequence: int | None = None
    expected_previous: str | None = None
    for row in _rows(low, high, chunk_size):
        event_id, sequence, previous_hash, key_id, digest = row[0], row[1], row[2], row[3], row[-1]
        if expected_sequence is None:
            span.first_sequence, span.first_id, span.first_previous = sequence, event_id, previous_hash
        elif sequence != expected_sequence:
            span.add("sequence_gap", gap_message(expected_sequence - 1, sequence), expected_sequence)
        elif previous_hash != expected_previous:
            message = f"event {sequence} (id {event_id}): previous_hash is not the hash of event {sequence - 1}"
            span.add("broken_link", message, sequence)
        key = hmac_keys.get(key_id)
        if key is None:
            span.add("unknown_key", f"event {sequence} (id {event_id}): sealed with unknown key {key_id!r}", sequence)
        elif event_hash(row[:-1], key) != digest:
            message = f"event {sequence} (id {event_id}): content does not match its hash (changed after sealing)"
            span.add("content_changed", message, sequence)
        for checkpoint in by_sequence.get(sequence, ()):
            if checkpoint["hash"] != digest:
                message = (
                    f"event {sequence} (id {event_id}) is not the event {checkpoint_label(checkpoint)} signed: "
                    "the chain was rewritten"
                )
                span.add("checkpoint_mismatch", message, sequence)
        expected_sequence, expected_previous = sequence + 1, digest
        span.events += 1
    if expected_sequence is not None:
        span.last_sequence, span.last_hash = expected_sequence - 1, expected_previous or ""
    return span


def _walk_in_child(
    low: int, high: int, by_sequence: dict, chunk_size: int, max_problems: int, snapshot: str | None
) -> Span:
    try:
        with in_snapshot(snapshot):
            return walk(low, high, by_sequence, chunk_size=chunk_size, max_problems=max_problems)
    finally:
        connections.close_all()


def walk_all(
    by_sequence: dict[int, list[dict]],
    *,
    bounds: tuple[int, int] | None,
    jobs: int,
    chunk_size: int,
    max_problems: int,
    snapshot: str | None = None,
) -> list[Span]:
    """The chain from ``bounds`` (``sequence_bounds()``) as consecutive spans, walked by up
    to ``jobs`` processes at once, each in ``snapshot`` (``chain_snapshot``) when given."""
    if bounds is None:
        return []
    low, high = bounds
    jobs = max(1, min(jobs, (high - low + 1) // MIN_SPAN))
    if jobs == 1:
        with in_snapshot(snapshot):
            return [walk(low, high, by_sequence, chunk_size=chunk_size, max_problems=max_problems)]
    size = -(-(high - low + 1) // jobs)
    ranges = [(start, min(start + size - 1, high)) for start in range(low, high + 1, size)]
    connections.close_all()  # each process opens its own; this one reconnects when needed
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return pool.starmap(
            _walk_in_child, [(a, b, by_sequence, chunk_size, max_problems, snapshot) for a, b in ranges]
        )
