"""End users enrol a TOTP authenticator through a one-time link sent to the phone of record."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Person, Role, User
from accounts.selectors import user_works_on
from audit.events import ActorKind, EventType
from audit.recorder import security_event_record
from validation import crypto, links, params
from validation.channels import SendError
from validation.channels.base import phone_unavailable_reason
from validation.channels.sms import sms_send
from validation.channels.totp import totp_match
from validation.models import PersonAuthenticator, SendRecord
from validation.services._common import VerificationError
from validation.services.limits import records_refusals, send_reserve
from validation.services.requests import person_lock_reason_now

MAX_ENROLLMENT_ATTEMPTS = 5


def _event(event_type: EventType, person: Person, *, actor=None, end_user=False, request=None, **details) -> None:
    security_event_record(
        event_type=event_type,
        actor=actor,
        actor_kind=ActorKind.END_USER if end_user else None,
        organization=person.organization,
        target=person,
        details=details,
        request=request,
    )


@records_refusals
@transaction.atomic
def enrollment_start(*, actor: User, person: Person, request: HttpRequest | None = None) -> PersonAuthenticator:
    """Send the person a one-time link to enrol an authenticator. An enrolled one keeps
    working until the new one is confirmed. The link counts against every send limit, as a
    challenge does: it is a text to the phone of record, sent by a technician."""
    if not user_works_on(user=actor, organization=person.organization):
        raise VerificationError("You are not assigned to this person's organisation.")
    if not (actor.is_superuser or actor.has_role(Role.TECHNICIAN)):
        raise VerificationError("Only technicians send enrolment links.")
    reason = phone_unavailable_reason(person)
    if reason:
        raise VerificationError(f"Cannot send an enrolment link: {reason}.")
    authenticator, _ = PersonAuthenticator.objects.select_for_update().get_or_create(person=person)
    authenticator.pending_sealed_key = crypto.seal(secrets.token_bytes(20))
    authenticator.enrollment_nonce_hash = ""
    authenticator.enrollment_expires_at = timezone.now() + params.enrollment_lifetime()
    authenticator.enrollment_attempts = 0
    authenticator.save()
    _event(
        EventType.VERIFICATION_ENROLLMENT_REQUESTED,
        person,
        actor=actor,
        request=request,
        replaces_enrolled=authenticator.is_confirmed,
    )
    send_reserve(
        person=person,
        technician=actor,
        destination=person.phone,
        destination_masked=person.masked_phone,
        kind=SendRecord.Kind.ENROLLMENT,
        target=person,
    )
    from validation.tasks import enrollment_send

    transaction.on_commit(lambda: enrollment_send.delay(authenticator.pk))
    return authenticator


def enrollment_dispatch(*, authenticator_id: int) -> None:
    """Create the link's nonce and text the link. Raises SendError when a retry may help."""
    with transaction.atomic():
        authenticator = (
            PersonAuthenticator.objects.select_for_update(of=("self",))
            .select_related("person__organization")
            .filter(pk=authenticator_id, enrollment_nonce_hash="")
            .exclude(pending_sealed_key="")
            .first()
        )
        if (
            authenticator is None
            or authenticator.enrollment_expires_at is None
            or authenticator.enrollment_expires_at <= timezone.now()
        ):
            return
        # The phone may have changed, or verification locked, since the link was queued.
        unavailable = phone_unavailable_reason(authenticator.person) or person_lock_reason_now(authenticator.person)
        if unavailable:
            enrollment_send_failed(authenticator_id=authenticator_id, reason=f"Not sent: {unavailable}")
            return
        nonce = crypto.nonce_generate()
        authenticator.enrollment_nonce_hash = crypto.nonce_hash(nonce)
        authenticator.save(update_fields=["enrollment_nonce_hash"])
        person = authenticator.person
        url = links.link_url("validation:enroll", nonce, purpose=links.ENROLLMENT)
        minutes = int(params.enrollment_lifetime().total_seconds() // 60)
        body = render_to_string(
            "validation/sms/enrollment.txt", {"organization": person.organization, "url": url, "minutes": minutes}
        ).strip()
    try:
        sms_send(to=person.phone, body=body, status_callback=settings_status_callback())
    except SendError as exc:
        if not exc.permanent:
            PersonAuthenticator.objects.filter(pk=authenticator_id).update(enrollment_nonce_hash="")
            raise
        enrollment_send_failed(authenticator_id=authenticator_id, reason=exc.reason)
        return
    _event(EventType.VERIFICATION_ENROLLMENT_SENT, person, destination=person.masked_phone)


def settings_status_callback() -> str:
    from validation.services.challenges import status_callback_url

    return status_callback_url()


@transaction.atomic
def enrollment_send_failed(*, authenticator_id: int, reason: str) -> None:
    authenticator = PersonAuthenticator.objects.select_related("person__organization").get(pk=authenticator_id)
    PersonAuthenticator.objects.filter(pk=authenticator_id).update(
        pending_sealed_key="", enrollment_nonce_hash="", enrollment_expires_at=None
    )
    _event(EventType.VERIFICATION_ENROLLMENT_FAILED, authenticator.person, reason=reason)


def enrollment_for_link(token: str, *, for_update: bool = False) -> PersonAuthenticator:
    """The pending enrolment a link points at (row-locked with ``for_update``). Raises BadLink."""
    nonce = links.link_nonce(token, purpose=links.ENROLLMENT, max_age=params.enrollment_lifetime())
    rows = PersonAuthenticator.objects.select_for_update(of=("self",)) if for_update else PersonAuthenticator.objects
    authenticator = (
        rows.select_related("person__organization")
        .filter(enrollment_nonce_hash=crypto.nonce_hash(nonce))
        .exclude(pending_sealed_key="")
        .first()
    )
    if authenticator is None or authenticator.enrollment_expires_at is None:
        raise links.BadLink("This link has already been used or is not valid.")
    if authenticator.enrollment_expires_at <= timezone.now():
        raise links.BadLink("This link has expired. Ask the helpdesk for a new one.")
    if authenticator.enrollment_attempts >= MAX_ENROLLMENT_ATTEMPTS:
        raise links.BadLink("Too many wrong codes. Ask the helpdesk for a new link.")
    return authenticator


def enrollment_otpauth_uri(authenticator: PersonAuthenticator) -> str:
    import base64
    from urllib.parse import quote, urlencode

    secret = base64.b32encode(crypto.unseal(authenticator.pending_sealed_key)).decode().rstrip("=")
    issuer = f"{authenticator.person.organization.name} helpdesk"
    label = quote(f"{issuer}:{authenticator.person.full_name}")
    return f"otpauth://totp/{label}?" + urlencode({"secret": secret, "issuer": issuer, "digits": 6, "period": 30})


def enrollment_confirm(*, token: str, code: str, request: HttpRequest | None = None) -> bool:
    """The person proves the new authenticator with a code. True when enrolled; False for
    a wrong code (at most MAX_ENROLLMENT_ATTEMPTS). Raises BadLink."""
    with transaction.atomic():
        authenticator = enrollment_for_link(token, for_update=True)
        authenticator.enrollment_attempts += 1
        PersonAuthenticator.objects.filter(pk=authenticator.pk).update(enrollment_attempts=F("enrollment_attempts") + 1)
        fresh = PersonAuthenticator(last_t=-1)
        step = totp_match(fresh, code, sealed_key=authenticator.pending_sealed_key)
        if step is None:
            _event(
                EventType.VERIFICATION_ENROLLMENT_WRONG_CODE,
                authenticator.person,
                end_user=True,
                request=request,
                attempts=authenticator.enrollment_attempts,
            )
            return False
        authenticator.sealed_key = authenticator.pending_sealed_key
        authenticator.pending_sealed_key = ""
        authenticator.enrollment_nonce_hash = ""
        authenticator.enrollment_expires_at = None
        authenticator.confirmed_at = timezone.now()
        authenticator.last_t = step
        authenticator.save()
        _event(EventType.VERIFICATION_ENROLLMENT_COMPLETED, authenticator.person, end_user=True, request=request)
    return True
