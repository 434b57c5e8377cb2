"""Contact change: the new value's checks, and the notices to both the old and the new contact.

A phone change texts the old and the new number (Twilio, or the development outbox, from a
Celery task); an email change mails the old and the new address. Each message shows the
other contact masked, never in full. Each side is sent at most once (``*_notified_at``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.utils import timezone

from access.action_models import HelpdeskAction
from access.services._common import AccessError, record
from accounts.forms import phone_to_e164
from accounts.models import Person
from audit.events import EventType
from validation.channels.base import SendError
from validation.channels.sms import sms_send
from validation.selectors import email_masked

CONTACT_FIELDS = ("phone", "email")
OLD, NEW = "old", "new"


def mask_contact(field: str, value: str) -> str:
    if not value:
        return "none"
    return f"•••• {value[-4:]}" if field == "phone" else email_masked(value)


def clean_contact(*, person: Person, field: str, value: str) -> str:
    """The new phone (E.164) or email of record, or AccessError saying what is wrong."""
    value = (value or "").strip()
    if field not in CONTACT_FIELDS:
        raise AccessError("Choose the phone or the email address of record.")
    if not value or len(value) > 254:
        raise AccessError(f"Enter the new {'phone number' if field == 'phone' else 'email address'}.")
    try:
        if field == "phone":
            value = phone_to_e164(value)
        else:
            validate_email(value)
            value = value.lower()
    except ValidationError as exc:
        raise AccessError(" ".join(exc.messages)) from None
    current = getattr(person, field) or ""
    if value == (current.lower() if field == "email" else current):
        raise AccessError(f"That is already the {field} of record.")
    if field == "email":
        taken = (
            Person.objects.filter(organization=person.organization)
            .exclude(pk=person.pk)
            .annotate(lower=Lower("email"))
            .filter(lower=value)
        )
        if taken.exists():
            raise AccessError("Another person in this organisation has that email address of record.")
    return value


def notices_after_commit(done: HelpdeskAction) -> None:
    """Queue the notice to each side that has a contact, once the change commits."""
    from access.tasks import contact_change_notify

    def queue(side: str):
        return lambda: contact_change_notify.delay(done.pk, side)

    for side, value in ((OLD, done.previous_contact), (NEW, done.new_contact)):
        if value:
            transaction.on_commit(queue(side))


def contact_change_notice_send(*, action_id: int, side: str) -> bool:
    """Send the notice for one side of a contact change. False when there is nothing to send
    (already sent, no such contact). Raises SendError for a text Twilio refused or could not
    take (the task retries transient ones); SMTP errors propagate likewise."""
    stamp = "previous_contact_notified_at" if side == OLD else "new_contact_notified_at"
    with transaction.atomic():
        done = (
            HelpdeskAction.objects.select_for_update(of=("self",))
            .select_related("person", "organization")
            .filter(pk=action_id, contact_field__in=CONTACT_FIELDS)
            .first()
        )
        if done is None or side not in (OLD, NEW) or getattr(done, stamp) is not None:
            return False
        to = done.previous_contact if side == OLD else done.new_contact
        other = done.new_contact if side == OLD else done.previous_contact
        if not to:
            return False
        context = {"done": done, "side": side, "other_masked": mask_contact(done.contact_field, other)}
        if done.contact_field == "phone":
            from validation.services.challenges import status_callback_url

            body = render_to_string(f"access/sms/contact_changed_{side}.txt", context).strip()
            sms_send(to=to, body=body, status_callback=status_callback_url())
        else:
            _mail(to, side, context)
        setattr(done, stamp, timezone.now())
        done.save(update_fields=[stamp])
        record(
            EventType.ACTION_CONTACT_NOTICE_SENT,
            target=done,
            organization=done.organization,
            person=done.person_id,
            side=side,
            channel="sms" if done.contact_field == "phone" else "email",
            destination=mask_contact(done.contact_field, to),
        )
    return True


def _mail(to: str, side: str, context: dict) -> None:
    from django.conf import settings

    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(
        render_to_string("access/email/contact_changed_subject.txt", context).split()
    )
    body = render_to_string(f"access/email/contact_changed_{side}.txt", context)
    EmailMessage(subject, body, to=[to]).send()


def contact_change_notice_failed(*, action_id: int, side: str, reason: str) -> None:
    done = HelpdeskAction.objects.select_related("organization").filter(pk=action_id).first()
    if done is None:
        return
    with transaction.atomic():
        record(
            EventType.ACTION_CONTACT_NOTICE_FAILED,
            target=done,
            organization=done.organization,
            person=done.person_id,
            side=side,
            reason=reason[:200],
        )


__all__ = ["SendError", "clean_contact", "contact_change_notice_failed", "contact_change_notice_send"]
