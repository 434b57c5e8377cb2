"""The interface every directory connector implements.

A connector carries out a gated helpdesk action in the client organisation's own directory
(LDAP/Active Directory, Entra ID, Okta, Google Workspace...) or, for ``record_only``, tells
the technician to do it there. The portal calls a connector only after both checks passed
(an active grant, a verified caller), with the verification row locked, and records what the
connector returns in the same transaction that consumes the verification.

Contract (``access.connectors.testkit`` checks it):

- Each of ``reset_password``, ``reset_mfa``, ``unlock`` and ``update_contact`` returns an
  ``ActionResult``: ``ok``; a ``reference`` the portal records (the directory's request or
  change id; ``record_only``: the portal's one-time reference); a ``message`` safe to show
  the technician and to keep. A failure is ``ActionResult.failure(message, permanent=...)``:
  ``permanent`` when trying again cannot help (no such account), transient otherwise. A
  connector may also raise; the portal treats any exception as a transient failure.
- Nothing secret leaves a connector: the temporary password it is given is never logged,
  never put in ``message`` or ``reference``, never kept on the connector.
- Calls are bounded: a connector that talks to a server uses a timeout of at most
  ``timeout_seconds`` (the verification row stays locked for as long as the call lasts).
- A connector holds no state between calls and touches no portal table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from accounts.models import Organization, Person, User


class PasswordDelivery(StrEnum):
    """How a password reset reaches the person (per organisation: ``DirectoryConnectorConfig``)."""

    TEMPORARY_PASSWORD = "temporary_password"  # shown once to the technician, who reads it out
    RESET_LINK = "reset_link"  # a link to the person's verified channel


class ErrorKind(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"


@dataclass(frozen=True)
class ActionContext:
    """Who performs what for whom. ``reference`` is the portal's one-time reference of this
    action (``record_only`` returns it; others may quote it in the directory's audit log)."""

    organization: Organization
    person: Person
    technician: User
    ticket_reference: str
    reference: str


@dataclass(frozen=True)
class Channel:
    """A verified channel of the person: ``kind`` is "phone" or "email"; ``address`` the
    full phone number or address (for the connector to send to), ``masked`` for display."""

    kind: str
    address: str
    masked: str


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    reference: str = ""
    message: str = ""
    error: ErrorKind | None = None

    @classmethod
    def success(cls, *, reference: str, message: str) -> ActionResult:
        return cls(ok=True, reference=reference, message=message)

    @classmethod
    def failure(cls, message: str, *, permanent: bool) -> ActionResult:
        return cls(ok=False, message=message, error=ErrorKind.PERMANENT if permanent else ErrorKind.TRANSIENT)

    @property
    def permanent(self) -> bool:
        return self.error == ErrorKind.PERMANENT


class DirectoryConnector:
    """Base class of the connectors; ``name`` is what the per-organisation setting stores."""

    name: str = ""
    label: str = ""
    timeout_seconds: float = 10.0
    # Whether the change happens in the client's directory (False: the technician makes it).
    performs_change: bool = True

    def reset_password(
        self,
        context: ActionContext,
        *,
        delivery: PasswordDelivery,
        temporary_password: str | None,
        channel: Channel | None,
    ) -> ActionResult:
        """Reset the person's password: set ``temporary_password`` (must be changed at next
        sign-in) for ``TEMPORARY_PASSWORD``, or send a reset link to ``channel`` for ``RESET_LINK``."""
        raise NotImplementedError

    def reset_mfa(self, context: ActionContext) -> ActionResult:
        """Remove the person's MFA factors so they enrol again."""
        raise NotImplementedError

    def unlock(self, context: ActionContext) -> ActionResult:
        """Clear a lockout of the person's account."""
        raise NotImplementedError

    def update_contact(self, context: ActionContext, *, field: str, value: str) -> ActionResult:
        """Set the person's ``field`` ("phone" in E.164, or "email") of record to ``value``."""
        raise NotImplementedError
