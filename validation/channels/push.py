from __future__ import annotations

import secrets
from datetime import timedelta

from django.template.loader import render_to_string

from validation import crypto, links, params
from validation.channels.base import Channel, phone_unavailable_reason
from validation.models import Challenge, Method


def match_numbers() -> tuple[int, list[int]]:
    """The number for the technician's screen and the three (shuffled) the person picks from."""
    numbers = secrets.SystemRandom().sample(range(10, 100), 3)
    shown = numbers[:]
    secrets.SystemRandom().shuffle(shown)
    return numbers[0], shown


class PushChannel(Channel):
    """A text with a one-time link to an approve/deny page with number matching."""

    method = Method.PUSH
    strong = True

    def unavailable_reason(self, person, *, now=None):
        return phone_unavailable_reason(person, now=now)

    def lifetime(self) -> timedelta:
        return params.push_lifetime()

    def compose(self, challenge: Challenge) -> str:
        nonce = crypto.nonce_generate()
        challenge.link_nonce_hash = crypto.nonce_hash(nonce)
        url = links.link_url("validation:push_respond", nonce, purpose=links.PUSH)
        return render_to_string("validation/sms/push.txt", {"url": url, "request": challenge.request}).strip()
