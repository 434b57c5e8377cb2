"""Directory connectors: one module per connector, behind ``base.DirectoryConnector``.

The registry maps the name stored per organisation (``access.DirectoryConnectorConfig``,
default ``settings.DIRECTORY_CONNECTOR_DEFAULT``) to its class. A new connector (LDAP/Active
Directory, Entra ID, Okta, Google Workspace) is a module here, an entry in ``CONNECTORS``
and a test that runs ``access.connectors.testkit.ConnectorContract`` against it.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from access.connectors.base import (
    ActionContext,
    ActionResult,
    Channel,
    DirectoryConnector,
    ErrorKind,
    PasswordDelivery,
)
from access.connectors.record_only import RecordOnlyConnector

CONNECTORS: dict[str, type[DirectoryConnector]] = {
    RecordOnlyConnector.name: RecordOnlyConnector,
}


def connector_choices() -> list[tuple[str, str]]:
    return [(name, cls.label or name) for name, cls in sorted(CONNECTORS.items())]


def connector_named(name: str) -> DirectoryConnector:
    """A fresh connector instance; ImproperlyConfigured for a name nobody registered (an
    organisation set to a connector that was removed must fail loudly, not fall back)."""
    try:
        return CONNECTORS[name]()
    except KeyError:
        raise ImproperlyConfigured(
            f"Directory connector {name!r} is not installed (known: {', '.join(sorted(CONNECTORS))})"
        ) from None


@checks.register(checks.Tags.compatibility)
def default_connector_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``DIRECTORY_CONNECTOR_DEFAULT`` names an installed connector (``manage.py check``)."""
    name = settings.DIRECTORY_CONNECTOR_DEFAULT
    if name in CONNECTORS:
        return []
    return [
        checks.Error(
            f"DIRECTORY_CONNECTOR_DEFAULT={name!r} is not an installed directory connector.",
            hint=f"Choose one of: {', '.join(sorted(CONNECTORS))}.",
            id="access.E001",
        )
    ]


__all__ = [
    "CONNECTORS",
    "ActionContext",
    "ActionResult",
    "Channel",
    "DirectoryConnector",
    "ErrorKind",
    "PasswordDelivery",
    "connector_choices",
    "connector_named",
]
