"""The directory connector contract (``access.connectors.testkit``) run against ``record_only``,
and the registry every organisation's choice resolves through."""

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from access.connectors import CONNECTORS, connector_choices, connector_named, default_connector_check
from access.connectors.base import PasswordDelivery
from access.connectors.record_only import RecordOnlyConnector
from access.connectors.testkit import ConnectorContract


class TestRecordOnlyConnector(ConnectorContract):
    @pytest.fixture
    def connector(self):
        return RecordOnlyConnector()

    def test_returns_the_portals_one_time_reference_for_the_ticket(self, connector, context):
        result = connector.reset_mfa(context)
        assert result.reference == context.reference
        assert f"paste reference {context.reference} into ticket {context.ticket_reference}" in result.message
        assert "Contoso's own tools" in result.message

    def test_changes_nothing_itself(self, connector):
        assert connector.performs_change is False

    def test_a_reset_link_without_a_channel_is_a_permanent_failure(self, connector, context):
        result = connector.reset_password(
            context, delivery=PasswordDelivery.RESET_LINK, temporary_password=None, channel=None
        )
        assert result.ok is False and result.permanent


def test_the_registry_resolves_names_and_refuses_unknown_ones():
    assert isinstance(connector_named("record_only"), RecordOnlyConnector)
    assert ("record_only", RecordOnlyConnector.label) in connector_choices()
    with pytest.raises(ImproperlyConfigured, match="not installed"):
        connector_named("ldap")
    assert set(CONNECTORS) == {"record_only"}


def test_an_unknown_default_connector_fails_the_system_check(settings):
    settings.DIRECTORY_CONNECTOR_DEFAULT = "record_only"
    assert default_connector_check() == []
    settings.DIRECTORY_CONNECTOR_DEFAULT = "entra"
    (error,) = default_connector_check()
    assert error.level == checks.ERROR and error.id == "access.E001"


# --- The admin: superusers choose each organisation's connector ------------------------------

ADD_URL = "/admin/access/directoryconnectorconfig/add/"


@pytest.mark.django_db
def test_a_superuser_sets_an_organisations_connector_in_the_admin_through_the_service(client):
    from access.action_models import DirectoryConnectorConfig
    from audit.models import SecurityEvent
    from tests.accounts.factories import OrganizationFactory, UserFactory

    org = OrganizationFactory()
    client.force_login(UserFactory(is_staff=True, is_superuser=True, mfa=True))
    response = client.post(
        ADD_URL, {"organization": org.pk, "connector": "record_only", "password_delivery": "reset_link"}
    )
    assert response.status_code == 302
    assert DirectoryConnectorConfig.objects.get(organization=org).password_delivery == "reset_link"
    assert SecurityEvent.objects.filter(event_type="action.connector_configured").count() == 1

    refused = client.post(ADD_URL, {"organization": org.pk, "connector": "ldap", "password_delivery": "reset_link"})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()


@pytest.mark.django_db
def test_staff_who_are_not_superusers_cannot_open_the_connector_admin(client):
    from accounts.models import Role
    from tests.accounts.factories import OrganizationFactory, UserFactory

    org = OrganizationFactory()
    client.force_login(UserFactory(is_staff=True, roles=[Role.ORG_ADMIN], organizations=[org], mfa=True))
    assert client.get(ADD_URL).status_code == 403
    assert client.get("/admin/access/directoryconnectorconfig/").status_code == 403
