"""Gated helpdesk actions: password reset, MFA reset, account unlock, contact change.

``helpdesk_action_perform`` allows an action only when both hold, decided at request time:

1. an active grant of a role covering the action in the person's organisation (and covering
   privileged people when the person is privileged): ``access.authorization.grant_allowing``
   on the grant rows with the database's clock;
2. a verified, unconsumed verification of the same technician, for the same person and the
   same action, verified less than 15 minutes ago.

The flow holds the verification row locked (``SELECT ... FOR UPDATE``) from the checks to the
commit, so two attempts on one verification perform the action once: the second waits, then
finds it used. Inside that lock it calls the organisation's directory connector, then, in the
same transaction, writes the ``HelpdeskAction``, consumes the verification and records
``action.performed``. A connector failure rolls all of that back (the verification
stays usable) and is recorded as ``action.failed`` in a transaction of its own; a
refusal is recorded as ``action.refused`` with what was missing.

Calling an outside system with a row locked is deliberate: the lock is on one verification of
one technician, and connectors bound their calls (``DirectoryConnector.timeout_seconds``). A
crash after the directory changed but before the commit leaves the change unrecorded and the
verification unused; the connector's own reference in the directory's log names the action.
"""

from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from access import action_selectors as selectors
from access import params
from access.action_models import HelpdeskAction, PasswordDeliveryChoice
from access.action_selectors import Missing
from access.authorization import grant_allowing
from access.connectors import ActionContext, ActionResult, Channel, DirectoryConnector, PasswordDelivery
from access.services._common import AccessError, record
from access.services.action_contacts import clean_contact, notices_after_commit
from accounts.models import Person, User
from accounts.selectors import user_works_on
from accounts.services import person_update
from audit.events import EventType
from validation.models import Action, Challenge, Method, VerificationRequest
from validation.selectors import email_masked
from validation.services import VerificationError, verification_consume

logger = logging.getLogger(__name__)

TEMPORARY_PASSWORD_LENGTH = 16
_PASSWORD_SYMBOLS = "-_.!?#%+="
_PASSWORD_ALPHABET = string.ascii_letters + string.digits + _PASSWORD_SYMBOLS
_REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed
REFERENCE_LENGTH = 10  # ~49 bits: unguessable, short enough to paste into a ticket


class ActionRefused(AccessError):
    """The grant, the verification or both are missing: ``missing`` says which, with fixes."""

    def __init__(self, missing: list[Missing]):
        super().__init__(" ".join(m.message for m in missing))
        self.missing = missing


class ActionFailed(AccessError):
    """The directory connector failed; nothing was recorded as done, the verification is unused."""

    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ActionOutcome:
    record: HelpdeskAction
    # Only for a password reset by temporary password: shown once, never stored or logged.
    temporary_password: str | None = None


def temporary_password_generate(length: int = TEMPORARY_PASSWORD_LENGTH) -> str:
    """A strong password from ``secrets``: letters, digits and symbols, each class present."""
    while True:
        password = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))
        classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits, _PASSWORD_SYMBOLS)
        if all(any(c in cls for c in password) for cls in classes):
            return password


def action_reference_generate() -> str:
    return "HD-" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


@sensitive_variables("temporary_password", "outcome")
def helpdesk_action_perform(
    *,
    actor: User,
    person: Person,
    action: str,
    verification: VerificationRequest | None,
    contact_field: str = "",
    new_contact: str = "",
    request: HttpRequest | None = None,
) -> ActionOutcome:
    """Perform ``action`` on ``person`` through the organisation's connector. Raises
    ActionRefused (what is missing), ActionFailed (the connector failed) or AccessError (bad
    input; nothing recorded)."""
    if action not in params.GRANTABLE_ACTIONS:
        raise AccessError("Choose a password reset, an MFA reset, an account unlock or a contact change.")
    if not user_works_on(user=actor, organization=person.organization):
        raise AccessError("You are not assigned to this person's organisation.")
    connector = selectors.connector_for(organization=person.organization)
    try:
        with transaction.atomic():
            outcome = _perform(actor, person, action, verification, connector, contact_field, new_contact, request)
    except ActionRefused as refused:
        _record_refusal(actor, person, action, verification, refused, request)
        raise
    except ActionFailed as failed:
        _record_failure(actor, person, action, verification, connector, failed, request)
        raise
    return outcome


@sensitive_variables("temporary_password")
def _perform(actor, person, action, verification, connector, contact_field, new_contact, request) -> ActionOutcome:
    locked = (
        VerificationRequest.objects.select_for_update().filter(pk=verification.pk).first()
        if verification is not None
        else None
    )
    # The person's row only (of=self): the organisation's row stays free for everyone else.
    person = Person.objects.select_for_update(of=("self",)).select_related("organization").get(pk=person.pk)
    grant = grant_allowing(
        technician=actor, organization=person.organization, action=action, privileged=person.privileged
    )
    _refuse_if_missing(actor, person, action, locked, grant)
    assert locked is not None and grant is not None  # else refused just above
    if action == Action.CONTACT_CHANGE:  # after the conditions: a refusal says what is missing first
        new_contact = clean_contact(person=person, field=contact_field, value=new_contact)
    config = selectors.directory_config_for(organization=person.organization)
    delivery = PasswordDelivery(config.password_delivery) if action == Action.PASSWORD_RESET else None
    temporary_password = temporary_password_generate() if delivery == PasswordDelivery.TEMPORARY_PASSWORD else None
    context = ActionContext(
        organization=person.organization,
        person=person,
        technician=actor,
        ticket_reference=locked.ticket_reference,
        reference=action_reference_generate(),
    )
    # Consumed before the directory is called, in this transaction: a verification that
    # expires during the call cannot turn a change already made into a "refused", and a
    # connector failure rolls the consumption back with everything else.
    try:
        verification_consume(actor=actor, verification=locked, person=person, action=action, request=request)
    except VerificationError as exc:
        raise ActionRefused([selectors.verification_fix(person=person, action=action, problem=exc.message)]) from None
    previous = getattr(person, contact_field) if action == Action.CONTACT_CHANGE else ""
    if action == Action.CONTACT_CHANGE:  # before the directory, so a clash changes nothing there
        _contact_update(actor, person, contact_field, new_contact)
    result = _call(
        connector, context, action, delivery, temporary_password, _channel(locked), contact_field, new_contact
    )
    if not result.ok:
        raise ActionFailed(result.message or "The directory connector did not say why.", permanent=result.permanent)
    return ActionOutcome(
        record=_record_done(
            actor,
            person,
            action,
            locked,
            grant,
            connector,
            context,
            result,
            delivery,
            contact_field,
            previous,
            new_contact,
            request,
        ),
        temporary_password=temporary_password,
    )


def _refuse_if_missing(actor, person, action, verification, grant) -> None:
    missing = []
    if grant is None:
        missing.append(selectors.grant_fix(technician=actor, person=person, action=action))
    problem = selectors.verification_problem(
        verification, technician=actor, person=person, action=action, now=timezone.now()
    )
    if problem:
        missing.append(selectors.verification_fix(person=person, action=action, problem=problem))
    if missing:
        raise ActionRefused(missing)


def _channel(verification: VerificationRequest) -> Channel | None:
    """The person's channel that verified them: the phone when a push or an SMS code was
    approved, else the email of record (else the phone of record, if any)."""
    person = verification.person
    approved = set(verification.challenges.filter(status=Challenge.Status.APPROVED).values_list("method", flat=True))
    phone_used = approved & {Method.PUSH, Method.SMS_CODE}
    if person.phone and (phone_used or not person.email):
        return Channel(kind="phone", address=person.phone, masked=person.masked_phone)
    if person.email:
        return Channel(kind="email", address=person.email, masked=email_masked(person.email))
    return None


@sensitive_variables("temporary_password")
def _call(connector, context, action, delivery, temporary_password, channel, field, value) -> ActionResult:
    """The connector's answer; an exception from it is a transient failure (logged by type only:
    its text could carry what the connector was given)."""
    try:
        if action == Action.PASSWORD_RESET:
            return connector.reset_password(
                context, delivery=delivery, temporary_password=temporary_password, channel=channel
            )
        if action == Action.MFA_RESET:
            return connector.reset_mfa(context)
        if action == Action.ACCOUNT_UNLOCK:
            return connector.unlock(context)
        return connector.update_contact(context, field=field, value=value)
    except Exception as exc:  # any connector bug or outage must leave the verification usable
        logger.warning("Directory connector %s raised %s", connector.name, type(exc).__name__)
        return ActionResult.failure(f"The directory connector {connector.name} failed unexpectedly.", permanent=False)


def _contact_update(actor, person, field, value) -> None:
    """The new contact of record (stamping contact_changed_at). Another person holding it
    already (a concurrent import or edit) is a failure that changes nothing."""
    try:
        with transaction.atomic():
            person_update(actor=actor, person=person, data={field: value})
    except IntegrityError:
        raise ActionFailed(
            "Another person in the directory already has this contact of record; nothing was changed.",
            permanent=True,
        ) from None


def _record_done(
    actor, person, action, verification, grant, connector, context, result, delivery, field, previous, value, request
) -> HelpdeskAction:
    done = HelpdeskAction.objects.create(
        organization=person.organization,
        person=person,
        technician=actor,
        action=action,
        verification=verification,
        grant=grant,
        connector=connector.name,
        reference=context.reference,
        connector_reference=result.reference[:64],
        message=result.message,
        password_delivery=delivery.value if delivery else "",
        contact_field=field if action == Action.CONTACT_CHANGE else "",
        previous_contact=previous,
        new_contact=value if action == Action.CONTACT_CHANGE else "",
    )
    if action == Action.CONTACT_CHANGE:
        notices_after_commit(done)
    record(
        EventType.ACTION_PERFORMED,
        actor=actor,
        organization=person.organization,
        target=done,
        request=request,
        **_details(person, action, verification),
        grant=grant.pk,
        role=grant.role.name,
        connector=connector.name,
        reference=done.reference,
        connector_reference=done.connector_reference,
        delivery=done.password_delivery or None,
        contact_field=done.contact_field or None,
    )
    return done


def _details(person: Person, action: str, verification: VerificationRequest | None) -> dict:
    return {"person": person.pk, "action": action, "verification": verification.pk if verification else None}


def _record_refusal(actor, person, action, verification, refused: ActionRefused, request) -> None:
    with transaction.atomic():
        record(
            EventType.ACTION_REFUSED,
            actor=actor,
            organization=person.organization,
            target=person,
            request=request,
            **_details(person, action, verification),
            missing=[m.kind for m in refused.missing],
            reasons=[m.message for m in refused.missing],
        )


def _record_failure(actor, person, action, verification, connector: DirectoryConnector, failed: ActionFailed, request):
    with transaction.atomic():
        record(
            EventType.ACTION_FAILED,
            actor=actor,
            organization=person.organization,
            target=person,
            request=request,
            **_details(person, action, verification),
            connector=connector.name,
            permanent=failed.permanent,
            reason=failed.message[:500],
        )


__all__ = [
    "ActionFailed",
    "ActionOutcome",
    "ActionRefused",
    "PasswordDeliveryChoice",
    "action_reference_generate",
    "helpdesk_action_perform",
    "temporary_password_generate",
]
