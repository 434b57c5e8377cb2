"""The interface every verification channel implements.

A channel says whether it can serve a person right now (and why not), how long its
challenges live, and, for channels that send a text, composes the message at send
time. Secrets (codes, link nonces) are created in ``compose`` inside the worker, stored
on the challenge only as an HMAC or a hash, and exist in clear only in the message.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from accounts.models import Person
from validation import params
from validation.models import Challenge, Method


class SendError(Exception):
    """A message could not be sent. ``permanent`` errors are not retried."""

    def __init__(self, reason: str, *, permanent: bool, code: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.code = code


class Channel:
    method: Method
    strong: bool = False
    sends_message: bool = True

    def unavailable_reason(self, person: Person, *, now: datetime | None = None) -> str | None:
        """Why this channel cannot serve ``person`` now, or None when it can."""
        raise NotImplementedError

    def lifetime(self) -> timedelta:
        return params.code_lifetime()

    def destination_masked(self, person: Person) -> str:
        return person.masked_phone

    def send_destination(self, person: Person) -> str:
        """The address of record the message goes to (the send limits count it, hashed).
        A channel that texts another number or emails must override it."""
        return person.phone

    def compose(self, challenge: Challenge) -> str:
        """Create the challenge's secret, store its hash on ``challenge`` (unsaved) and return
        the message body. Only channels that send a message implement it."""
        raise NotImplementedError

    def deliver(self, challenge: Challenge, body: str, *, status_callback: str) -> str:
        """Send the composed message and return the provider's message id. Raises SendError.
        A text to the phone of record unless the channel says otherwise."""
        from validation.channels.sms import sms_send  # sms imports this module

        return sms_send(to=challenge.request.person.phone, body=body, status_callback=status_callback)


def phone_unavailable_reason(person: Person, *, now: datetime | None = None) -> str | None:
    """The phone of record can serve unless it is missing or changed too recently."""
    if not person.phone:
        return "No phone of record"
    return contact_cooldown_reason(person, "the phone", now=now)


def email_unavailable_reason(person: Person, *, now: datetime | None = None) -> str | None:
    """The email of record can serve unless it is missing or changed too recently."""
    if not person.email:
        return "No email of record"
    return contact_cooldown_reason(person, "the email", now=now)


def contact_cooldown_reason(person: Person, contact: str, *, now: datetime | None = None) -> str | None:
    """Why ``contact`` (a channel using the phone or email of record) cannot verify the
    person: their contact details changed within the cooldown. One stamp covers both, so a
    changed email also holds back the phone: either change may be an attacker's."""
    if person.contact_changed_at is None:
        return None
    cooldown_ends = person.contact_changed_at + params.contact_cooldown()
    if (now or timezone.now()) < cooldown_ends:
        return (
            f"Contact details changed on {person.contact_changed_at:%Y-%m-%d}; "
            f"{contact} cannot verify until {cooldown_ends:%Y-%m-%d %H:%M} UTC"
        )
    return None
