"""django-auditlog field history of the domain models, and who each change is put down to."""

import pytest
from auditlog.models import LogEntry
from celery.signals import before_task_publish, task_postrun, task_prerun

from access.models import Eligibility, Grant, Role
from accounts.models import Organization, Person
from audit.field_history import ACTOR_HEADER, CID_HEADER, field_history_actor
from audit.tasks import audit_checkpoint, audit_seal
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory
from tests.accounts.test_admin import _form_data
from validation.models import VerificationPolicy

pytestmark = pytest.mark.django_db


def last_change(obj) -> LogEntry:
    return LogEntry.objects.get_for_object(obj).filter(action=LogEntry.Action.UPDATE).latest("timestamp")


def test_the_domain_models_have_field_history():
    from auditlog.registry import auditlog

    from access.models import DirectoryConnectorConfig, HelpdeskAction, ReviewCampaign, ReviewItem

    assert {Organization, Person, VerificationPolicy, Role, Eligibility, Grant} <= set(auditlog.get_models())
    assert {DirectoryConnectorConfig, HelpdeskAction, ReviewCampaign, ReviewItem} <= set(auditlog.get_models())


def test_an_admin_edit_is_put_down_to_the_admin_with_the_requests_id(client):
    superuser = UserFactory(is_staff=True, is_superuser=True, mfa=True)
    person = PersonFactory(department="Finance")
    client.force_login(superuser)

    response = client.post(
        f"/admin/accounts/person/{person.pk}/change/",
        _form_data(person, department="Treasury"),
        HTTP_X_FORWARDED_FOR="198.51.100.7",
        HTTP_X_CORRELATION_ID="chosen-by-the-client",
    )
    assert response.status_code == 302

    entry = last_change(person)
    assert entry.actor == superuser
    assert entry.changes_dict["department"] == ["Finance", "Treasury"]
    assert "search_text" not in entry.changes_dict and "updated_at" not in entry.changes_dict
    # X-Forwarded-For is believed only behind a trusted proxy (TRUST_X_FORWARDED_FOR), as for security events.
    assert entry.remote_addr == "127.0.0.1"
    assert len(entry.cid) == 32  # the request id (a client's X-Correlation-Id header is not used)


def test_a_task_changes_fields_as_the_user_whose_request_queued_it():
    technician = UserFactory()
    organization = OrganizationFactory(name="Before")
    task = audit_seal

    # What Celery does when the request queues the task...
    headers: dict = {}
    with field_history_actor(technician, cid="request-1"):
        before_task_publish.send(sender=task.name, headers=headers, body=None)
    assert headers == {ACTOR_HEADER: technician.pk, CID_HEADER: "request-1"}

    # ...and in the worker, around the task, with those headers on its request.
    task.push_request(id="task-1", is_eager=False, **headers)
    try:
        task_prerun.send(sender=task, task_id="task-1", task=task, args=(), kwargs={})
        organization.name = "During"
        organization.save()
        task_postrun.send(sender=task, task_id="task-1", task=task, args=(), kwargs={}, retval=None, state="SUCCESS")
    finally:
        task.pop_request()
    entry = last_change(organization)
    assert (entry.actor, entry.cid) == (technician, "request-1")

    organization.name = "After"
    organization.save()
    assert last_change(organization).actor is None  # nothing lingers once the task is over


def test_a_beat_task_changes_fields_as_the_system_and_names_itself():
    organization = OrganizationFactory(name="Before")
    task = audit_checkpoint

    task.push_request(id="beat-1", is_eager=False)
    try:
        task_prerun.send(sender=task, task_id="beat-1", task=task, args=(), kwargs={})
        organization.name = "During"
        organization.save()
        task_postrun.send(sender=task, task_id="beat-1", task=task, args=(), kwargs={}, retval=None, state="SUCCESS")
    finally:
        task.pop_request()
    entry = last_change(organization)
    assert entry.actor is None and entry.cid == "celery:audit.tasks.audit_checkpoint:beat-1"


def test_work_outside_requests_and_tasks_names_its_actor_explicitly():
    admin = UserFactory()
    policy_org = OrganizationFactory()
    with field_history_actor(admin):
        policy_org.active = False
        policy_org.save()
    assert last_change(policy_org).actor == admin


def test_field_history_admin_search_works_and_is_read_only(client, django_user_model):
    from tests.accounts.factories import UserFactory

    superuser = UserFactory(is_superuser=True, is_staff=True, mfa=True)
    client.force_login(superuser)
    response = client.get("/admin/auditlog/logentry/", {"q": "someone@example.com"})
    assert response.status_code == 200
    assert client.get("/admin/auditlog/logentry/add/").status_code == 403
