"""``record_changes``: the validation services' updates that carry their security event."""

from django.db import connection, transaction

from audit.events import EventType
from audit.models import SecurityEvent
from validation import services
from validation.models import PersonVerificationState, VerificationRequest
from validation.services._common import REQUESTS, record_changes

_TICKET_SQL = f"UPDATE {REQUESTS} SET ticket_reference = %s WHERE id = %s AND status = %s"  # noqa: S608
_FAILURES_SQL = f"UPDATE {PersonVerificationState._meta.db_table} SET consecutive_failures = 2 WHERE person_id = %s"  # noqa: S608


def _start(technician, person) -> VerificationRequest:
    return services.verification_request_create(
        actor=technician, person=person, action="other", ticket_reference="INC-1"
    )


def _events() -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type=EventType.VERIFICATION_REQUEST_CANCELLED))


def test_changes_and_their_event_land_together(technician, person, django_assert_num_queries):
    verification = _start(technician, person)
    changes = [(_FAILURES_SQL, [person.pk]), (_TICKET_SQL, ["INC-2", verification.pk, "pending"])]
    with transaction.atomic(), django_assert_num_queries(1 if connection.vendor == "postgresql" else 3):
        assert record_changes(
            EventType.VERIFICATION_REQUEST_CANCELLED, verification, changes=changes, actor=technician, reason="x"
        )
    assert VerificationRequest.objects.get(pk=verification.pk).ticket_reference == "INC-2"
    assert PersonVerificationState.objects.get(person=person).consecutive_failures == 2
    [event] = _events()
    assert event.actor_id == technician.pk
    assert event.details == {"verification": verification.pk, "person": person.pk, "reason": "x"}


def test_no_event_when_the_last_change_changed_nothing(technician, person):
    """The last update decides (an approval that found no attempt left, say); the ones before
    it are made either way, on every database."""
    verification = _start(technician, person)
    changes = [(_FAILURES_SQL, [person.pk]), (_TICKET_SQL, ["INC-2", verification.pk, "verified"])]
    with transaction.atomic():
        assert not record_changes(EventType.VERIFICATION_REQUEST_CANCELLED, verification, changes=changes)
    assert VerificationRequest.objects.get(pk=verification.pk).ticket_reference == "INC-1"
    assert PersonVerificationState.objects.get(person=person).consecutive_failures == 2
    assert _events() == []
