"""The log only grows: the models, the admin and (on PostgreSQL) the database refuse the rest."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit.checkpoints import checkpoint_write
from audit.models import AppendOnlyError, ChainLink, Checkpoint, SecurityEvent
from tests.accounts.factories import UserFactory
from tests.audit.conftest import postgresql_only, record_events

pytestmark = pytest.mark.django_db


def sql(statement: str, params=()) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_the_model_refuses_to_change_or_delete_an_event(sealed_events):
    sealed_events(2)
    event = SecurityEvent.objects.first()
    event.actor_label = "someone else"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        SecurityEvent.objects.filter(pk=event.pk).update(actor_label="x")
    with pytest.raises(AppendOnlyError):
        SecurityEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        SecurityEvent.objects.bulk_update([event], ["actor_label"])
    assert SecurityEvent.objects.filter(actor_label="someone else").count() == 0


def test_the_model_refuses_to_change_or_delete_a_chain_link(sealed_events):
    sealed_events(2)
    link = ChainLink.objects.first()
    link.hash = "0" * 64
    with pytest.raises(AppendOnlyError):
        link.save()
    with pytest.raises(AppendOnlyError):
        link.delete()
    with pytest.raises(AppendOnlyError):
        ChainLink.objects.update(hash="0" * 64)
    with pytest.raises(AppendOnlyError):
        ChainLink.objects.all().delete()


def test_the_model_refuses_to_change_or_delete_a_checkpoint(sealed_events):
    sealed_events(1)
    checkpoint = checkpoint_write()
    with pytest.raises(AppendOnlyError):
        checkpoint.save()
    with pytest.raises(AppendOnlyError):
        checkpoint.delete()
    with pytest.raises(AppendOnlyError):
        Checkpoint.objects.update(sequence=0)


@pytest.fixture
def superuser_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, mfa=True))
    return client


def test_the_admin_lets_superusers_look_but_not_touch(superuser_client, sealed_events):
    sealed_events(1)
    event = SecurityEvent.objects.order_by("id").first()
    base = "/admin/audit/securityevent/"
    assert superuser_client.get(base).status_code == 200
    assert superuser_client.get(f"{base}{event.pk}/change/").status_code == 200  # the read-only view
    assert superuser_client.post(f"{base}{event.pk}/change/", {"actor_label": "x"}).status_code == 403
    assert superuser_client.post(f"{base}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert superuser_client.get(f"{base}add/").status_code == 403
    response = superuser_client.post(base, {"action": "delete_selected", "_selected_action": [event.pk]})
    assert SecurityEvent.objects.filter(pk=event.pk).exists()
    assert b"delete_selected" not in superuser_client.get(base).content
    assert response.status_code in (200, 302)
    assert superuser_client.get("/admin/audit/checkpoint/").status_code == 200


def test_staff_who_are_not_superusers_do_not_see_events_in_the_admin(client, sealed_events):
    sealed_events(1)
    client.force_login(UserFactory(is_staff=True, mfa=True))
    assert client.get("/admin/audit/securityevent/").status_code == 403


@postgresql_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_securityevent SET actor_label = 'x'",
        "UPDATE audit_securityevent SET user_agent = user_agent",
        "DELETE FROM audit_securityevent",
        "TRUNCATE audit_securityevent",
        "UPDATE audit_chainlink SET hash = repeat('0', 64)",
        "UPDATE audit_chainlink SET sealed_at = sealed_at",
        "DELETE FROM audit_chainlink",
        "TRUNCATE audit_chainlink",
    ],
)
def test_postgresql_refuses_to_change_delete_or_truncate_events_and_links(sealed_events, statement):
    sealed_events(2)
    with pytest.raises(DatabaseError, match="append-only"):
        sql(statement)
    assert SecurityEvent.objects.count() == ChainLink.objects.count() == 2


@postgresql_only
@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_checkpoint SET sequence = 0", "DELETE FROM audit_checkpoint", "TRUNCATE audit_checkpoint"],
)
def test_postgresql_refuses_to_change_delete_or_truncate_checkpoints(sealed_events, statement):
    sealed_events(1)
    checkpoint_write()
    with pytest.raises(DatabaseError, match="append-only"):
        sql(statement)


@postgresql_only
def test_postgresql_refuses_any_update_of_an_event_even_before_it_is_sealed(db):
    record_events(1)
    with pytest.raises(DatabaseError, match="append-only"):
        sql("UPDATE audit_securityevent SET actor_label = 'x'")
    assert SecurityEvent.objects.get().actor_label != "x"
