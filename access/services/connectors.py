"""Each organisation's directory connector: chosen by superusers (the Django admin)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from access.action_models import DirectoryConnectorConfig, PasswordDeliveryChoice
from access.connectors import CONNECTORS
from access.services._common import AccessError, record
from accounts.models import Organization, User
from audit.events import EventType


@transaction.atomic
def directory_connector_set(
    *,
    actor: User,
    organization: Organization,
    connector: str,
    password_delivery: str,
    request: HttpRequest | None = None,
) -> DirectoryConnectorConfig:
    """Set which connector performs ``organization``'s gated actions and how a password reset
    reaches the person. Superusers only: the connector decides where changes are made."""
    if not (actor.is_active and actor.is_superuser):
        raise AccessError("Only a superuser chooses an organisation's directory connector.")
    if connector not in CONNECTORS:
        raise AccessError(f"Choose an installed connector: {', '.join(sorted(CONNECTORS))}.")
    if password_delivery not in PasswordDeliveryChoice.values:
        raise AccessError("Choose how a password reset reaches the person.")
    config = DirectoryConnectorConfig.objects.select_for_update().filter(organization=organization).first()
    before = {"connector": config.connector, "password_delivery": config.password_delivery} if config else None
    after = {"connector": connector, "password_delivery": password_delivery}
    if config is not None and before == after:
        return config
    if config is None:
        config = DirectoryConnectorConfig(organization=organization)
    config.connector, config.password_delivery = connector, password_delivery
    config.updated_at, config.updated_by = timezone.now(), actor
    config.save()
    record(
        EventType.ACTION_CONNECTOR_CONFIGURED,
        actor=actor,
        organization=organization,
        target=config,
        request=request,
        before=before,
        after=after,
    )
    return config
