"""Verification of the whole event log: every link of the chain and every checkpoint.

``chain_verify`` streams the sealed events in sequence order (a server-side cursor on
PostgreSQL, fetched in chunks; ``audit.walk``, optionally in several processes, each over a
range of sequence numbers) and reports, in chain order, each place where the log is
not what was sealed: a row whose content no longer matches its hash, a link that does not
point at the hash before it, a gap in the sequence numbers, a prefix dropped without a
signed retention checkpoint, a tail cut off since a checkpoint, a checkpoint that is forged
or contradicts the chain, and events left unsealed for too long.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min
from django.utils import timezone

from audit import keys
from audit.chain import GENESIS_HASH
from audit.checkpoints import CHAIN_NAME, checkpoint_as_dict, checkpoint_signature_valid, checkpoints_from_file
from audit.models import Checkpoint, SecurityEvent
from audit.walk import (
    CHUNK_SIZE,
    Problem,
    Span,
    chain_snapshot,
    checkpoint_label,
    gap_message,
    in_snapshot,
    sequence_bounds,
    walk_all,
)

# The sealer runs right after each commit and every few seconds from beat; an event still
# unsealed after this long means it is not running.
STALE_UNSEALED = timedelta(seconds=60)
__all__ = ["ChainReport", "Problem", "chain_verify"]


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
            report.add("checkpoint_forged", f"{checkpoint_label(data)}: signature does not verify (forged or altered)")
            continue
        if "source" in data and data["signature"] not in signatures:
            report.add("checkpoint_deleted", f"{checkpoint_label(data)} is missing from the database's checkpoints")
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
            f"events up to sequence {anchor['sequence']} were dropped by {checkpoint_label(anchor)}, "
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


def _join(report: ChainReport, spans: list[Span], checkpoints: _Checkpoints) -> None:
    """The spans as one chain: its start, each boundary, and their problems in chain order."""
    found: list[Problem] = []
    dropped = 0
    previous: Span | None = None
    for span in spans:
        found += span.problems
        dropped += span.problem_count - len(span.problems)
        if span.first_sequence is None:
            continue  # a range whose events were all deleted: the next boundary shows the gap
        if previous is None:
            report.first_sequence = span.first_sequence
            expected = _expected_start(report, span.first_sequence, checkpoints)
        elif span.first_sequence != (after := previous.last_sequence or 0) + 1:
            found.append(Problem("sequence_gap", gap_message(after, span.first_sequence), after + 1))
            expected = None
        else:
            expected = previous.last_hash
        if expected is not None and span.first_previous != expected:
            message = (
                f"event {span.first_sequence} (id {span.first_id}): previous_hash is not the hash of event "
                f"{span.first_sequence - 1}"
            )
            found.append(Problem("broken_link", message, span.first_sequence))
        report.events += span.events
        previous = span
    if previous is not None:
        report.last_sequence, report.head_hash = previous.last_sequence, previous.last_hash
    for problem in sorted(found, key=lambda p: p.sequence or 0):
        report.add(problem.kind, problem.message, problem.sequence)
    report.problem_count += dropped


def _check_tail(report: ChainReport, checkpoints: _Checkpoints) -> None:
    latest = checkpoints.latest
    last = report.last_sequence or 0
    if latest is not None and int(latest["sequence"]) > last:
        report.add(
            "truncated_tail",
            f"the chain ends at sequence {last}, but {checkpoint_label(latest)} recorded sequence "
            f"{latest['sequence']}: {int(latest['sequence']) - last} event(s) removed from the tail since then",
            last + 1,
        )
    if latest is None and report.events:
        report.notes.append("No checkpoint yet: a tail cut off from the chain could not be noticed.")


def _check_unsealed(report: ChainReport, event_count: int, now: datetime) -> None:
    """Events without a link: queued for the sealer, or (taken off its queue by hand) never
    to be linked; either way one older than STALE_UNSEALED is reported. Every linked event
    the walk saw is one event (``event_id`` is unique), so the events beyond those have none;
    only when there are some does it look for them (an anti-join over the whole table)."""
    if event_count <= report.events:
        return
    waiting = SecurityEvent.objects.filter(link__isnull=True).aggregate(n=Count("id"), oldest=Min("created_at"))
    report.unsealed = waiting["n"]
    if waiting["n"] and waiting["oldest"] < now - STALE_UNSEALED:
        report.add(
            "stale_unsealed",
            f"{waiting['n']} event(s) not sealed, the oldest recorded at {waiting['oldest']:%Y-%m-%d %H:%M:%S} UTC: "
            "the sealer is not running (Celery beat and worker), or events were taken off its queue",
        )
    elif waiting["n"]:
        report.notes.append(f"{waiting['n']} event(s) recorded in the last seconds are waiting for the sealer.")


def chain_verify(
    *,
    checkpoint_file: str | None = None,
    jobs: int = 1,
    max_problems: int = 20,
    chunk_size: int = CHUNK_SIZE,
    now: datetime | None = None,
) -> ChainReport:
    """Check the whole log. ``checkpoint_file`` adds the checkpoints copied there; ``jobs``
    splits the walk across that many processes (each sees committed data only)."""
    started = time.monotonic()
    report = ChainReport(max_problems=max_problems)
    with chain_snapshot() as snapshot:  # one moment of the log, whatever commits meanwhile
        with in_snapshot(snapshot):
            checkpoints = _load_checkpoints(report, checkpoint_file)
            bounds = sequence_bounds()
            event_count = SecurityEvent.objects.count()
        spans = walk_all(
            checkpoints.by_sequence,
            bounds=bounds,
            jobs=jobs,
            chunk_size=chunk_size,
            max_problems=max_problems,
            snapshot=snapshot,
        )
        _join(report, spans, checkpoints)
        _check_tail(report, checkpoints)
        with in_snapshot(snapshot):
            _check_unsealed(report, event_count, now or timezone.now())
    report.seconds = time.monotonic() - started
    return report
