"""audit_retention: the one way out of the log, leaving a signed checkpoint behind."""

import io
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.chain import event_link_verifies, security_event_seal
from audit.checkpoints import checkpoint_write
from audit.models import ChainLink, Checkpoint, SecurityEvent
from audit.verify import chain_verify
from tests.audit.conftest import AT, postgresql_only, record_events, tamper

pytestmark = pytest.mark.django_db


def sealed_at_age(days: int, count: int) -> None:
    with time_machine.travel(timezone.now() - timedelta(days=days)):
        record_events(count)
        security_event_seal()


def sequences() -> list[int]:
    return list(ChainLink.objects.order_by("sequence").values_list("sequence", flat=True))


def retention(*args) -> str:
    out = io.StringIO()
    call_command("audit_retention", *args, stdout=out)
    return out.getvalue()


def test_old_events_go_a_retention_checkpoint_stays_and_the_log_still_verifies(db):
    sealed_at_age(400, 5)
    sealed_at_age(10, 3)
    checkpoint_write()
    dropped_head = ChainLink.objects.get(sequence=5).hash

    assert "Dropped 5 events" in retention("--older-than", "365")

    assert sequences()[:3] == [6, 7, 8]
    assert SecurityEvent.objects.count() == ChainLink.objects.count() + 1  # + the retention's own event
    anchor = Checkpoint.objects.get(kind=Checkpoint.Kind.RETENTION)
    assert (anchor.sequence, anchor.hash) == (5, dropped_head)
    assert event_link_verifies(SecurityEvent.objects.get(link__sequence=6)) is True
    security_event_seal()  # the retention's own event, sealed after its commit in production
    applied = SecurityEvent.objects.get(event_type="audit.retention_applied")
    assert applied.details["through_sequence"] == 5 and applied.details["dropped"] == 5
    report = chain_verify()
    assert report.ok, report.problems
    assert report.first_sequence == 6


def test_deleting_the_retention_checkpoint_as_well_is_noticed(db):
    sealed_at_age(400, 3)
    sealed_at_age(1, 2)
    retention("--older-than", "365")
    tamper("DELETE FROM audit_checkpoint")

    assert [problem.kind for problem in chain_verify().problems] == ["missing_prefix"]


def test_the_last_event_always_stays(db):
    sealed_at_age(400, 4)

    retention("--older-than", "365")
    security_event_seal()
    assert sequences() == [4, 5]  # 5: audit.retention_applied
    assert chain_verify().ok


def test_only_the_oldest_part_of_the_chain_goes(db):
    sealed_at_age(400, 3)
    sealed_at_age(1, 1)
    sealed_at_age(400, 1)  # old, but later in the chain than a young event: it has to wait

    retention("--older-than", "365")
    assert sequences() == [4, 5]


def test_a_dry_run_drops_nothing(db):
    sealed_at_age(400, 3)
    sealed_at_age(1, 1)

    assert "Would drop 3 events" in retention("--older-than", "365", "--dry-run")
    assert SecurityEvent.objects.count() == 4 and not Checkpoint.objects.exists()


def test_retention_refuses_a_period_shorter_than_the_minimum(db, settings):
    settings.AUDIT_RETENTION_MIN_DAYS = 365
    with pytest.raises(CommandError, match="at least 365 days"):
        retention("--older-than", "90")


def test_retention_refuses_to_drop_from_a_log_that_does_not_verify(db):
    sealed_at_age(400, 3)
    sealed_at_age(1, 1)
    tamper(f"UPDATE audit_securityevent SET actor_label = 'x' WHERE {AT.format('sequence = 2')}")

    with pytest.raises(CommandError, match="does not verify"):
        retention("--older-than", "365")
    assert SecurityEvent.objects.count() == 4


@postgresql_only
def test_the_append_only_trigger_is_back_on_after_retention(db):
    sealed_at_age(400, 3)
    sealed_at_age(1, 1)
    retention("--older-than", "365")

    for table in ("audit_securityevent", "audit_chainlink"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table}")


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_verification_that_overlaps_a_retention_run_sees_the_log_before_or_after_it(monkeypatch, jobs):
    """Retention committed between verify reading the checkpoints and walking the events
    used to look like a prefix dropped without a checkpoint (missing_prefix)."""
    import threading

    from django.db import connections

    from audit import verify, walk

    monkeypatch.setattr(walk, "MIN_SPAN", 1)
    sealed_at_age(400, 4)
    sealed_at_age(1, 2)
    load = verify._load_checkpoints
    overlapped = []

    def load_then_let_retention_run(*args, **kwargs):
        loaded = load(*args, **kwargs)
        if not overlapped:  # retention verifies too: only the outer verification waits for it
            overlapped.append(True)
            thread = threading.Thread(target=_retention_in_own_connection)
            thread.start()
            thread.join()
        return loaded

    def _retention_in_own_connection():
        try:
            retention("--older-than", "365")
        finally:
            connections.close_all()

    monkeypatch.setattr(verify, "_load_checkpoints", load_then_let_retention_run)
    report = chain_verify(jobs=jobs)

    assert overlapped and sequences()[0] == 5  # retention did drop 1-4 meanwhile
    assert report.ok, report.problems
    assert report.first_sequence == 1  # the log as it was when the verification began
    assert chain_verify(jobs=jobs).ok and chain_verify().first_sequence == 5
