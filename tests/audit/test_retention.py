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
from audit.models import Checkpoint, SecurityEvent
from audit.verify import chain_verify
from tests.audit.conftest import postgresql_only, record_events, tamper

pytestmark = pytest.mark.django_db


def sealed_at_age(days: int, count: int) -> None:
    with time_machine.travel(timezone.now() - timedelta(days=days)):
        record_events(count)
        security_event_seal()


def sequences() -> list[int]:
    return list(
        SecurityEvent.objects.filter(sequence__isnull=False).order_by("sequence").values_list("sequence", flat=True)
    )


def retention(*args) -> str:
    out = io.StringIO()
    call_command("audit_retention", *args, stdout=out)
    return out.getvalue()


def test_old_events_go_a_retention_checkpoint_stays_and_the_log_still_verifies(db):
    sealed_at_age(400, 5)
    sealed_at_age(10, 3)
    checkpoint_write()
    dropped_head = SecurityEvent.objects.get(sequence=5).hash

    assert "Dropped 5 events" in retention("--older-than", "365")

    assert list(
        SecurityEvent.objects.filter(sequence__lte=8).values_list("sequence", flat=True).order_by("sequence")
    ) == [
        6,
        7,
        8,
    ]
    anchor = Checkpoint.objects.get(kind=Checkpoint.Kind.RETENTION)
    assert (anchor.sequence, anchor.hash) == (5, dropped_head)
    assert event_link_verifies(SecurityEvent.objects.get(sequence=6)) is True
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
    tamper("DELETE FROM audit_checkpoint", table="audit_checkpoint")

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
    tamper("UPDATE audit_securityevent SET actor_label = 'x' WHERE sequence = 2")

    with pytest.raises(CommandError, match="does not verify"):
        retention("--older-than", "365")
    assert SecurityEvent.objects.count() == 4


@postgresql_only
def test_the_append_only_trigger_is_back_on_after_retention(db):
    sealed_at_age(400, 3)
    sealed_at_age(1, 1)
    retention("--older-than", "365")

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_securityevent")
