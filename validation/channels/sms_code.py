from __future__ import annotations

from django.template.loader import render_to_string

from validation import crypto, params
from validation.channels.base import Channel, phone_unavailable_reason
from validation.models import Challenge, Method


class SmsCodeChannel(Channel):
    """A one-time code texted to the phone of record; the caller reads it to the technician."""

    method = Method.SMS_CODE
    strong = False

    def unavailable_reason(self, person, *, now=None):
        return phone_unavailable_reason(person, now=now)

    def compose(self, challenge: Challenge) -> str:
        request = challenge.request
        digits = params.CODE_DIGITS_PRIVILEGED if request.person.privileged else params.CODE_DIGITS
        code = crypto.code_generate(digits)
        challenge.code_hmac = crypto.code_hmac(challenge_id=challenge.pk, code=code)
        minutes = int(params.code_lifetime().total_seconds() // 60)
        return render_to_string(
            "validation/sms/code.txt", {"code": code, "request": request, "minutes": minutes}
        ).strip()
