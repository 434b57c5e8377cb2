"""An event recorded in one statement with the change it records (``change``)."""

import pytest
from django.db import connection
from django.test import RequestFactory

from accounts.models import Organization
from audit.chain import security_event_seal
from audit.events import EventType
from audit.models import SecurityEvent
from audit.recorder import security_event_record
from audit.verify import chain_verify
from tests.accounts.factories import OrganizationFactory, UserFactory
from tests.audit.conftest import postgresql_only

pytestmark = pytest.mark.django_db

RENAME = ("renamed", "UPDATE accounts_organization SET name = %s WHERE id = %s RETURNING id")
FIELDS = [f.attname for f in SecurityEvent._meta.concrete_fields if f.attname not in ("id", "created_at")]


def record(organization, request, actor=None, **kwargs):
    return security_event_record(
        event_type=EventType.DIRECTORY_ORGANIZATION_UPDATED,
        actor=actor,
        organization=organization,
        target=organization,
        details={"changed": ["name"], "nested": {"n": 1}},
        request=request,
        **kwargs,
    )


@postgresql_only
def test_the_event_and_its_change_are_one_statement_and_the_event_is_as_recorded_alone():
    organization = OrganizationFactory(name="Before")
    request = RequestFactory().post("/x", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Browser/1")
    admin = UserFactory(full_name="Ada Admin")
    alone = record(organization, request, admin)
    together = record(organization, request, admin, change=[(*RENAME, ["After", organization.pk])])
    assert together is not None and together.pk
    assert Organization.objects.get(pk=organization.pk).name == "After"
    stored = SecurityEvent.objects.filter(pk__in=[alone.pk, together.pk]).order_by("pk").values(*FIELDS)
    first, second = list(stored)
    assert first == second and second["actor_label"] == "Ada Admin"
    assert second["source_ip"] == "203.0.113.7" and second["details"] == {"changed": ["name"], "nested": {"n": 1}}
    security_event_seal()
    assert chain_verify().ok


@postgresql_only
def test_no_event_when_the_last_part_changes_nothing_and_the_parts_before_still_run():
    organization, other = OrganizationFactory(name="One"), OrganizationFactory(name="Two")
    change = [
        ("first", "UPDATE accounts_organization SET name = %s WHERE id = %s RETURNING id", ["Uno", other.pk]),
        ("second", "UPDATE accounts_organization SET name = %s WHERE id = %s AND false RETURNING id", ["X", 0]),
    ]
    assert record(organization, None, change=change) is None
    assert not SecurityEvent.objects.filter(event_type=EventType.DIRECTORY_ORGANIZATION_UPDATED).exists()
    assert Organization.objects.get(pk=other.pk).name == "Uno"


def test_a_change_in_the_events_statement_is_postgresqls_only():
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL runs it")
    organization = OrganizationFactory(name="Before")
    with pytest.raises(ValueError, match="PostgreSQL only"):
        record(organization, None, change=[(*RENAME, ["After", organization.pk])])
    assert Organization.objects.get(pk=organization.pk).name == "Before"
