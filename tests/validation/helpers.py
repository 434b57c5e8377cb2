import os
import re
from contextlib import contextmanager
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP

from tests.fakes.twilio_api import FakeTwilioApi, twilio_signature
from validation.channels import sms
from validation.models import OutboxMessage


def totp_code(raw_key: bytes, *, offset_steps: int = 0) -> str:
    totp = TOTP(raw_key, step=30, digits=6)
    totp.time = timezone.now().timestamp() + offset_steps * 30
    return f"{totp.token():06d}"


def last_text(to: str) -> str:
    return OutboxMessage.objects.filter(to=to).order_by("-id").first().body


def code_in(body: str) -> str:
    return re.search(r"code is (\d{6,8})", body).group(1)


def link_token_in(body: str) -> str:
    return re.search(r"/(?:r|e)/([^/\s]+)/", body).group(1)


def twilio_poster(client, settings, *, url_name: str, public_url: str):
    """A function that POSTs a form to the webhook ``url_name`` the way Twilio does.
    ``signature``: "valid" (computed by twilio's RequestValidator over ``public_url``, or
    ``signed_url``, with the test auth token, or ``token``), None for no header, or the
    header's literal value. ``form``: a mapping or a list of (name, value) pairs."""

    def post(form, *, signature="valid", token=None, signed_url=None):
        pairs = list(form.items()) if hasattr(form, "items") else list(form)
        headers = {}
        if signature == "valid":
            secret = token or settings.TWILIO_AUTH_TOKEN
            headers["X-Twilio-Signature"] = twilio_signature(signed_url or public_url, pairs, secret)
        elif signature is not None:
            headers["X-Twilio-Signature"] = signature
        return client.post(
            reverse(url_name),
            data=urlencode(pairs),
            content_type="application/x-www-form-urlencoded",
            headers=headers,
        )

    return post


@contextmanager
def texts_to_a_fake_twilio(settings, monkeypatch, **options):
    """The real twilio client sends to a fake of Twilio's API on 127.0.0.1 (``options`` go to
    ``FakeTwilioApi``), with a client made afresh for it and dropped afterwards."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"])))
    api = FakeTwilioApi(
        account_sid=settings.TWILIO_ACCOUNT_SID, auth_token=settings.TWILIO_AUTH_TOKEN, **options
    ).start()
    settings.TWILIO_API_BASE_URL = api.base_url
    settings.SMS_DEV_OUTBOX = False
    sms._client.cache_clear()
    try:
        yield api
    finally:
        api.stop()
        sms._client.cache_clear()
