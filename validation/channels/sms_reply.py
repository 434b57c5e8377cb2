"""SMS reply: a text asking the person to answer ``YES <number>`` or ``NO``.

The number is shown on the technician's screen only, never in the text: the person
learns it from the technician they are on a call with (number matching), so a text
nobody asked for cannot be approved by a reflexive "YES". Replies come back through
Twilio's inbound-message webhook (``validation.services.replies``).
"""

from __future__ import annotations

import secrets

from django.template.loader import render_to_string

from accounts.models import Person
from validation.channels.base import Channel, phone_unavailable_reason
from validation.models import Challenge, Method

MATCH_RANGE = range(10, 100)


def reply_match_number(person: Person) -> int:
    """A 2-digit number no other open SMS-reply challenge to the same phone uses, so a
    reply names exactly one challenge even when one phone is of record in several
    organisations (an MSP's clients)."""
    in_use = set(
        Challenge.objects.filter(
            method=Method.SMS_REPLY,
            status__in=Challenge.OPEN_STATUSES,
            request__person__phone=person.phone,
        ).values_list("match_number", flat=True)
    )
    free = [n for n in MATCH_RANGE if n not in in_use] or list(MATCH_RANGE)
    return secrets.choice(free)


class SmsReplyChannel(Channel):
    """A text answered by a reply from the phone of record."""

    method = Method.SMS_REPLY
    strong = False

    def unavailable_reason(self, person, *, now=None):
        return phone_unavailable_reason(person, now=now)

    def compose(self, challenge: Challenge) -> str:
        return render_to_string("validation/sms/reply.txt", {"request": challenge.request}).strip()
