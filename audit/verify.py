"""Verification of the whole event log: every link of the chain and every checkpoint.

``chain_verify`` streams the sealed events in sequence order (a server-side cursor on
PostgreSQL, fetched in chunks) and reports, in chain order, each place where the log is
not what was sealed: a row whose content no longer matches its hash, a link that does not
point at the hash before it, a gap in the sequence numbers, a prefix dropped without a
signed retention checkpoint, a tail cut off since a checkpoint, a checkpoint that is forged
or contradicts the chain, and events left unsealed for too long.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Min
from django.utils import timezone

from audit import keys
from audit.chain import GENESIS_HASH, ROW_FIELDS, event_hash
from audit.checkpoints import CHAIN_NAME, checkpoint_as_dict, checkpoint_signature_valid, checkpoints_from_file
from audit.models import Checkpoint, SecurityEvent

# The sealer runs right after each commit and every few seconds from beat; an event still
# unsealed after this long means it is not running.
STALE_UNSEALED = timedelta(seconds=60)
CHUNK_SIZE = 20_000


@dataclass(frozen=True)
class Problem:
    kind: str  # stable code: content_changed, broken_link, sequence_gap, missing_prefix, truncated_tail, ...
    message: str
    sequence: int | None = None


@dataclass
class ChainReport:
    events: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    head_hash: str = ""
    checkpoints: int = 0
    latest_checkpoint: dict[str, Any] | None = None
    unsealed: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    max_problems: int = 20

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, kind: str, message: str, sequence: int | None = None) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(kind, message, sequence))


@dataclass
class _Checkpoints:
    """The checkpoints whose signature verifies, indexed for the walk."""

    by_sequence: dict[int, list[dict]] = field(default_factory=dict)
    latest: dict | None = None
    anchor: dict | None = None  # the retention checkpoint with the highest sequence


def _label(data: dict) -> str:
    where = data.get("source") or f"checkpoint #{data.get('id')}"
    return f"{where} ({data.get('kind')}, sequence {data.get('sequence')}, {data.get('created_at')})"


def _load_checkpoints(report: ChainReport, checkpoint_file: str | None) -> _Checkpoints:
    public_keys = keys.verification_keys()
    stored = [{**checkpoint_as_dict(c), "id": c.pk} for c in Checkpoint.objects.order_by("sequence", "id")]
    external: list[dict] = []
    if checkpoint_file:
        external, unreadable = checkpoints_from_file(checkpoint_file)
        for message in unreadable:
            report.add("checkpoint_unreadable", message)
    signatures = {data["signature"] for data in stored}
    valid = _Checkpoints()
    for data in stored + external:
        if data.get("chain") != CHAIN_NAME or not checkpoint_signature_valid(data, public_keys):
            report.add("checkpoint_forged", f"{_label(data)}: signature does not verify (forged or altered)")
            continue
        if "source" in data and data["signature"] not in signatures:
            report.add("checkpoint_deleted", f"{_label(data)} is missing from the database's checkpoints")
        report.checkpoints += 1
        valid.by_sequence.setdefault(int(data["sequence"]), []).append(data)
        if valid.latest is None or int(data["sequence"]) > int(valid.latest["sequence"]):
            valid.latest = data
        if data["kind"] == Checkpoint.Kind.RETENTION and (
            valid.anchor is None or int(data["sequence"]) > int(valid.anchor["sequence"])
        ):
            valid.anchor = data
    report.latest_checkpoint = valid.latest
    return valid


def _expected_start(report: ChainReport, sequence: int, checkpoints: _Checkpoints) -> str | None:
    """The previous_hash the first remaining event must carry; None if nothing vouches for it."""
    anchor = checkpoints.anchor
    if anchor is not None and int(anchor["sequence"]) >= sequence:
        report.add(
            "retention_mismatch",
            f"events up to sequence {anchor['sequence']} were dropped by {_label(anchor)}, "
            f"yet event {sequence} is still there",
            sequence,
        )
    if sequence == 1:
        return GENESIS_HASH
    if anchor is not None and int(anchor["sequence"]) == sequence - 1:
        return anchor["hash"]
    report.add(
        "missing_prefix",
        f"the chain starts at sequence {sequence}: events 1-{sequence - 1} are missing and "
        "no signed retention checkpoint accounts for them",
        sequence,
    )
    return None


# On PostgreSQL the walk reads times already in canonical form and details as text: the
# database formats them faster than Python parses and re-formats them (same bytes; the
# tests seal through the ORM and verify through this).
_PG_COLUMNS = {
    "sealed_at": """to_char(sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
    "created_at": """to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
    "source_ip": "host(source_ip)",
    "details": "details::text",
}


def _sealed_rows(chunk_size: int) -> Iterator[tuple]:
    """Every sealed event in sequence order (``ROW_FIELDS``), streamed in chunks."""
    if connection.vendor != "postgresql":
        sealed = SecurityEvent.objects.filter(sequence__isnull=False).order_by("sequence")
        yield from sealed.values_list(*ROW_FIELDS).iterator(chunk_size=chunk_size)
        return
    columns = ", ".join(_PG_COLUMNS.get(name, connection.ops.quote_name(name)) for name in ROW_FIELDS)
    table = connection.ops.quote_name(SecurityEvent._meta.db_table)
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} WHERE sequence IS NOT NULL ORDER BY sequence")  # noqa: S608
        while rows := cursor.fetchmany(chunk_size):
            yield from rows


def _walk(report: ChainReport, checkpoints: _Checkpoints, chunk_size: int) -> None:
    hmac_keys = keys.hmac_keys()
    rows = _sealed_rows(chunk_size)
    expected_sequence: int | None = None
    expected_previous: str | None = None
    last_hash = ""
    count = 0
    for row in rows:
        event_id, sequence, previous_hash, key_id = row[0], row[1], row[2], row[3]
        digest = row[-1]
        if expected_sequence is None:
            report.first_sequence = sequence
            expected_previous = _expected_start(report, sequence, checkpoints)
        elif sequence != expected_sequence:
            missing = sequence - expected_sequence
            report.add(
                "sequence_gap",
                f"sequence {expected_sequence}" + (f"-{sequence - 1}" if missing > 1 else "") + f" missing: "
                f"{missing} event(s) deleted between {expected_sequence - 1} and {sequence}",
                expected_sequence,
            )
            expected_previous = None  # the deleted event's hash is unknown: nothing to compare
        if expected_previous is not None and previous_hash != expected_previous:
            report.add(
                "broken_link",
                f"event {sequence} (id {event_id}): previous_hash is not the hash of event {sequence - 1}",
                sequence,
            )
        key = hmac_keys.get(key_id)
        if key is None:
            report.add("unknown_key", f"event {sequence} (id {event_id}): sealed with unknown key {key_id!r}", sequence)
        elif event_hash(row[:-1], key) != digest:
            report.add(
                "content_changed",
                f"event {sequence} (id {event_id}): content does not match its hash (changed after sealing)",
                sequence,
            )
        for checkpoint in checkpoints.by_sequence.get(sequence, ()):
            if checkpoint["hash"] != digest:
                report.add(
                    "checkpoint_mismatch",
                    f"event {sequence} (id {event_id}) is not the event {_label(checkpoint)} signed: "
                    "the chain was rewritten",
                    sequence,
                )
        expected_sequence = sequence + 1
        expected_previous = digest
        last_hash = digest
        count += 1
    report.events = count
    report.last_sequence = None if expected_sequence is None else expected_sequence - 1
    report.head_hash = last_hash


def _check_tail(report: ChainReport, checkpoints: _Checkpoints) -> None:
    latest = checkpoints.latest
    last = report.last_sequence or 0
    if latest is not None and int(latest["sequence"]) > last:
        report.add(
            "truncated_tail",
            f"the chain ends at sequence {last}, but {_label(latest)} recorded sequence {latest['sequence']}: "
            f"{int(latest['sequence']) - last} event(s) removed from the tail since then",
            last + 1,
        )
    if latest is None and report.events:
        report.notes.append("No checkpoint yet: a tail cut off from the chain could not be noticed.")


def _check_unsealed(report: ChainReport, now: datetime) -> None:
    waiting = SecurityEvent.objects.filter(sequence__isnull=True).aggregate(n=Count("id"), oldest=Min("created_at"))
    report.unsealed = waiting["n"]
    if waiting["n"] and waiting["oldest"] < now - STALE_UNSEALED:
        report.add(
            "stale_unsealed",
            f"{waiting['n']} event(s) not sealed, the oldest recorded at {waiting['oldest']:%Y-%m-%d %H:%M:%S} UTC: "
            "the sealer is not running (Celery beat and worker)",
        )
    elif waiting["n"]:
        report.notes.append(f"{waiting['n']} event(s) recorded in the last seconds are waiting for the sealer.")


def chain_verify(
    *, checkpoint_file: str | None = None, max_problems: int = 20, chunk_size: int = CHUNK_SIZE, now=None
) -> ChainReport:
    """Check the whole log. ``checkpoint_file`` adds the checkpoints copied there."""
    started = time.monotonic()
    report = ChainReport(max_problems=max_problems)
    checkpoints = _load_checkpoints(report, checkpoint_file)
    _walk(report, checkpoints, chunk_size)
    _check_tail(report, checkpoints)
    _check_unsealed(report, now or timezone.now())
    report.seconds = time.monotonic() - started
    return report
