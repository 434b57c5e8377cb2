"""The contract every directory connector must pass, as a reusable pytest class.

Use it from a test module (pytest is a test dependency; the portal never imports this)::

    from access.connectors.testkit import RemoteConnectorContract

    class TestOktaConnector(RemoteConnectorContract):
        @pytest.fixture
        def connector(self, fake_okta):          # a fake of the directory's HTTP API
            return OktaConnector(base_url=fake_okta.url)

        @pytest.fixture
        def unreachable_connector(self):         # the same connector, its server down
            return OktaConnector(base_url="http://127.0.0.1:9")

A connector that makes no remote call (``record_only``) takes ``ConnectorContract`` alone.
Override ``person`` (and ``organization``) when the connector must find a real account in
its fake directory. The defaults are unsaved rows: the kit needs no database.
"""

from __future__ import annotations

import logging
import secrets

import pytest

from access.connectors import CONNECTORS
from access.connectors.base import ActionContext, ActionResult, Channel, DirectoryConnector, PasswordDelivery
from accounts.models import Organization, Person, User

REFERENCE_MAX = 64  # HelpdeskAction.connector_reference


class ConnectorContract:
    """What the portal relies on from any connector (see ``access.connectors.base``)."""

    @pytest.fixture
    def connector(self) -> DirectoryConnector:
        raise NotImplementedError("Provide a `connector` fixture returning the connector under test.")

    @pytest.fixture
    def organization(self) -> Organization:
        return Organization(pk=1, name="Contoso", slug="contoso")

    @pytest.fixture
    def person(self, organization) -> Person:
        return Person(
            pk=1,
            organization=organization,
            employee_id="E000042",
            full_name="Ada Quartermain",
            email="ada@contoso.example",
            phone="+12025550142",
        )

    @pytest.fixture
    def context(self, organization, person) -> ActionContext:
        technician = User(pk=1, email="terry@msp.example", full_name="Terry Tech")
        return ActionContext(
            organization=organization,
            person=person,
            technician=technician,
            ticket_reference="INC-4242",
            reference="HD-" + secrets.token_hex(5).upper(),
        )

    @pytest.fixture
    def temporary_password(self) -> str:
        return "Tmp-" + secrets.token_urlsafe(12)

    @pytest.fixture
    def phone_channel(self, person) -> Channel:
        return Channel(kind="phone", address=person.phone, masked=person.masked_phone)

    # --- Identity ------------------------------------------------------------------------

    def test_is_registered_under_its_name(self, connector):
        assert connector.name and CONNECTORS.get(connector.name) is type(connector)
        assert connector.label

    def test_calls_are_bounded_by_a_timeout(self, connector):
        assert 0 < connector.timeout_seconds <= 30

    # --- Each action returns a result the portal can record -------------------------------

    def _assert_recordable_success(self, result) -> None:
        assert isinstance(result, ActionResult)
        assert result.ok is True and result.error is None
        assert isinstance(result.reference, str) and 0 < len(result.reference) <= REFERENCE_MAX
        assert isinstance(result.message, str) and result.message.strip()

    def test_reset_password_with_a_temporary_password(self, connector, context, temporary_password):
        result = connector.reset_password(
            context, delivery=PasswordDelivery.TEMPORARY_PASSWORD, temporary_password=temporary_password, channel=None
        )
        self._assert_recordable_success(result)

    def test_reset_password_by_link_to_the_verified_channel(self, connector, context, phone_channel):
        result = connector.reset_password(
            context, delivery=PasswordDelivery.RESET_LINK, temporary_password=None, channel=phone_channel
        )
        self._assert_recordable_success(result)
        assert phone_channel.address not in result.message  # shown masked, if at all

    def test_reset_mfa(self, connector, context):
        self._assert_recordable_success(connector.reset_mfa(context))

    def test_unlock(self, connector, context):
        self._assert_recordable_success(connector.unlock(context))

    @pytest.mark.parametrize(("field", "value"), [("phone", "+12025550199"), ("email", "ada.q@contoso.example")])
    def test_update_contact(self, connector, context, field, value):
        self._assert_recordable_success(connector.update_contact(context, field=field, value=value))

    # --- Refusals are results, not crashes ------------------------------------------------

    def test_an_unknown_contact_field_is_a_permanent_failure(self, connector, context):
        result = connector.update_contact(context, field="department", value="Finance")
        assert result.ok is False and result.permanent and result.message.strip()

    def test_a_temporary_password_reset_without_a_password_is_a_permanent_failure(self, connector, context):
        result = connector.reset_password(
            context, delivery=PasswordDelivery.TEMPORARY_PASSWORD, temporary_password=None, channel=None
        )
        assert result.ok is False and result.permanent

    def test_a_connector_that_changes_the_directory_takes_the_remote_contract(self, connector):
        """A connector that calls a directory must also prove how it fails when the directory
        is down: its tests use ``RemoteConnectorContract``."""
        assert not connector.performs_change or isinstance(self, RemoteConnectorContract)

    # --- No secret leaves the connector ---------------------------------------------------

    def test_the_temporary_password_is_never_logged_returned_or_kept(
        self, connector, context, temporary_password, caplog
    ):
        with caplog.at_level(logging.DEBUG):
            result = connector.reset_password(
                context,
                delivery=PasswordDelivery.TEMPORARY_PASSWORD,
                temporary_password=temporary_password,
                channel=None,
            )
        assert temporary_password not in caplog.text
        assert temporary_password not in f"{result.message} {result.reference} {result!r}"
        assert temporary_password not in repr(vars(connector))


class RemoteConnectorContract(ConnectorContract):
    """The contract of a connector that changes the directory itself (``performs_change``):
    everything above, and an unreachable directory is a transient failure, never a crash."""

    @pytest.fixture
    def unreachable_connector(self) -> DirectoryConnector:
        raise NotImplementedError("Provide an `unreachable_connector` fixture (its directory down).")

    def test_an_unreachable_directory_is_a_transient_failure(self, unreachable_connector, context):
        result = unreachable_connector.unlock(context)
        assert result.ok is False and result.error is not None and not result.permanent
