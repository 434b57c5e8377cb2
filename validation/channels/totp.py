from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_otp.oath import TOTP

from validation import crypto, params
from validation.channels.base import Channel
from validation.models import Method, PersonAuthenticator

STEP = 30
DRIFT_STEPS = 1


class TotpChannel(Channel):
    """A code from the authenticator the person enrolled; nothing is sent."""

    method = Method.TOTP
    strong = True
    sends_message = False

    def unavailable_reason(self, person, *, now=None):
        authenticator = getattr(person, "authenticator", None)
        if authenticator is None or not authenticator.is_confirmed:
            return "No authenticator enrolled (send an enrolment link to the phone of record)"
        return None

    def lifetime(self) -> timedelta:
        return params.code_lifetime()

    def destination_masked(self, person) -> str:
        return "Authenticator app"


def totp_match(authenticator: PersonAuthenticator, code: str, *, sealed_key: str | None = None) -> int | None:
    """The time step a code belongs to (at most one step of drift, and only steps after the
    last accepted one, so no code is accepted twice), or None."""
    if not (code.isdigit() and len(code) == 6):
        return None
    key = crypto.unseal(sealed_key or authenticator.sealed_key)
    totp = TOTP(key, step=STEP, digits=6, drift=0)
    totp.time = timezone.now().timestamp()
    if totp.verify(int(code), tolerance=DRIFT_STEPS, min_t=authenticator.last_t + 1):
        return totp.t()  # includes the drift that matched
    return None
