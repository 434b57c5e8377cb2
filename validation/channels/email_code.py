"""Email code: a one-time code sent to the email of record; the caller reads it out.

Low assurance (a mailbox is often reachable where the caller is): never strong, and by
the policy engine's hard floor never sufficient alone. The email also carries a one-time
"I didn't request this" link, which reports fraud (``validation.services.lockout``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from smtplib import SMTPException, SMTPRecipientsRefused

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string

from validation import crypto, links, params
from validation.channels.base import Channel, SendError, email_unavailable_reason
from validation.models import Challenge, Method

logger = logging.getLogger(__name__)

# A person may read the email late; a fraud report is still worth having then.
FRAUD_LINK_LIFETIME = timedelta(hours=24)


def email_masked(email: str) -> str:
    local, at, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if at else ""


class EmailCodeChannel(Channel):
    method = Method.EMAIL_CODE
    strong = False

    def unavailable_reason(self, person, *, now=None):
        return email_unavailable_reason(person, now=now)

    def send_destination(self, person) -> str:
        return person.email

    def destination_masked(self, person) -> str:
        return email_masked(person.email)

    def compose(self, challenge: Challenge) -> str:
        request = challenge.request
        digits = params.CODE_DIGITS_PRIVILEGED if request.person.privileged else params.CODE_DIGITS
        code = crypto.code_generate(digits)
        challenge.code_hmac = crypto.code_hmac(challenge_id=challenge.pk, code=code)
        nonce = crypto.nonce_generate()
        challenge.link_nonce_hash = crypto.nonce_hash(nonce)
        context = {
            "code": code,
            "request": request,
            "minutes": int(params.code_lifetime().total_seconds() // 60),
            "fraud_url": links.link_url("validation:fraud_report", nonce, purpose=links.FRAUD_REPORT),
            "fraud_hours": int(FRAUD_LINK_LIFETIME.total_seconds() // 3600),
        }
        return render_to_string("validation/email/code.txt", context)

    def deliver(self, challenge: Challenge, body: str, *, status_callback: str) -> str:
        """Send by Django's email backend. A refused recipient is permanent; the rest is retried."""
        request = challenge.request
        subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(
            render_to_string("validation/email/code_subject.txt", {"request": request}).split()
        )
        message = EmailMessage(subject, body, to=[request.person.email])
        try:
            message.send()
        except SMTPRecipientsRefused:
            raise SendError("The mail server refused the email of record", permanent=True) from None
        except (SMTPException, OSError) as exc:
            logger.warning("Email code not sent: %s", type(exc).__name__)
            raise SendError("The mail server could not be reached", permanent=False) from None
        return "EM" + uuid.uuid4().hex
