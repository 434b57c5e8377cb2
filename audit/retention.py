"""Retention: the one way events leave the log.

Only a prefix of the chain goes (everything up to the last event older than the cutoff
that has no younger event before it), never the last event, and only after the whole
chain verified. Each batch leaves a signed *retention* checkpoint of the last dropped
event's hash in the same transaction, so ``audit_verify`` still checks the first remaining
event's link and can tell this from an attacker's deletion.

Each dropped event goes with its ``ChainLink``. On PostgreSQL the append-only triggers of
both tables are disabled for the DELETEs inside that transaction only; that needs the
tables' owner's rights (the role that ran the migrations).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.chain import chain_head, chain_lock, security_event_seal
from audit.checkpoints import checkpoint_create
from audit.events import EventType
from audit.models import ChainLink, Checkpoint, SecurityEvent
from audit.recorder import security_event_record
from audit.verify import chain_verify

BATCH = 50_000
TRIGGERS = {SecurityEvent: "audit_securityevent_append_only", ChainLink: "audit_chainlink_append_only"}


class RetentionError(Exception):
    """Retention refused; ``message`` says why."""


@dataclass
class RetentionResult:
    cutoff: datetime
    dropped: int = 0
    through_sequence: int | None = None
    checkpoints: int = 0


def _last_droppable(cutoff: datetime) -> int | None:
    """The highest sequence that may go: the chain's prefix of events older than the cutoff,
    never the head (the next event links to it, and the head must stay a row)."""
    first = ChainLink.objects.order_by("sequence").values_list("sequence", flat=True).first()
    if first is None:
        return None
    head, _ = chain_head()
    young = (
        ChainLink.objects.filter(event__created_at__gte=cutoff)
        .order_by("sequence")
        .values_list("sequence", flat=True)
        .first()
    )
    through = min(head - 1, (young or head + 1) - 1)
    return through if through >= first else None


def _delete_through(sequence: int) -> int:
    quote = connection.ops.quote_name
    events, links = quote(SecurityEvent._meta.db_table), quote(ChainLink._meta.db_table)
    on_postgresql = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        for model, trigger in TRIGGERS.items():
            if on_postgresql:
                cursor.execute(f"ALTER TABLE {quote(model._meta.db_table)} DISABLE TRIGGER {trigger}")
        cursor.execute(
            f"DELETE FROM {events} WHERE id IN (SELECT event_id FROM {links} WHERE sequence <= %s)",  # noqa: S608 - quoted
            [sequence],
        )
        dropped = cursor.rowcount
        cursor.execute(f"DELETE FROM {links} WHERE sequence <= %s", [sequence])  # noqa: S608 - table name quoted
        for model, trigger in TRIGGERS.items():
            if on_postgresql:
                cursor.execute(f"ALTER TABLE {quote(model._meta.db_table)} ENABLE TRIGGER {trigger}")
    return dropped


def events_retention_apply(
    *, older_than_days: int, dry_run: bool = False, now: datetime | None = None
) -> RetentionResult:
    """Drop the events older than ``older_than_days``; see the module docstring."""
    if older_than_days < settings.AUDIT_RETENTION_MIN_DAYS:
        raise RetentionError(
            f"--older-than {older_than_days}: events are kept at least {settings.AUDIT_RETENTION_MIN_DAYS} days "
            "(AUDIT_RETENTION_MIN_DAYS)"
        )
    result = RetentionResult(cutoff=(now or timezone.now()) - timedelta(days=older_than_days))
    security_event_seal()
    report = chain_verify(checkpoint_file=settings.AUDIT_CHECKPOINT_FILE)
    if not report.ok:
        raise RetentionError(
            "the chain does not verify, so nothing is dropped (run audit_verify): " + report.problems[0].message
        )
    through = _last_droppable(result.cutoff)
    result.through_sequence = through
    if through is None:
        return result
    if dry_run:
        result.dropped = ChainLink.objects.filter(sequence__lte=through).count()
        return result
    start = ChainLink.objects.order_by("sequence").values_list("sequence", flat=True)
    first = start.first()
    while first is not None and first <= through:
        batch_end = min(first + BATCH - 1, through)
        result.dropped += _drop_batch(batch_end, result, older_than_days)
        result.checkpoints += 1
        first = start.first()
    return result


def _drop_batch(through: int, result: RetentionResult, older_than_days: int) -> int:
    with transaction.atomic():
        chain_lock()
        last_hash = ChainLink.objects.filter(sequence=through).values_list("hash", flat=True).get()
        checkpoint = checkpoint_create(kind=Checkpoint.Kind.RETENTION, sequence=through, hash=last_hash)
        dropped = _delete_through(through)
        security_event_record(
            event_type=EventType.AUDIT_RETENTION_APPLIED,
            details={
                "through_sequence": through,
                "dropped": dropped,
                "older_than_days": older_than_days,
                "cutoff": result.cutoff.isoformat(),
                "checkpoint": checkpoint.pk,
            },
        )
    return dropped
