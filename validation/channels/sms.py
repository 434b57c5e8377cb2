"""SMS delivery: Twilio's REST API, or the development outbox when Twilio is not configured.

The one module that imports ``twilio``: sending texts, and checking the signature of
Twilio's webhooks. Set TWILIO_API_BASE_URL to send the same requests to another host (the
tests' fake Twilio API, a regional edge or a proxy).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from base64 import b64encode
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.http import HttpRequest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator

from validation.channels.base import SendError

if TYPE_CHECKING:
    from twilio.rest import Client

logger = logging.getLogger(__name__)

# Twilio error codes that no retry can fix (https://www.twilio.com/docs/api/errors).
PERMANENT_ERRORS = {
    21211: "The phone of record is not a valid number",
    21214: "The phone of record cannot receive messages",
    21408: "Sending to this country is not enabled",
    21610: "The person has unsubscribed from texts (replied STOP)",
    21612: "Twilio cannot route to this number",
    21614: "The phone of record is not a mobile number",
    30003: "The phone is unreachable",
    30004: "The number blocks messages",
    30005: "The number is unknown or no longer exists",
    30006: "The number is a landline or cannot receive texts",
    30007: "The carrier filtered the message",
}


@cache
def _client() -> Client:
    """Twilio's REST client, made when the process first sends a text (the worker): its HTTP
    stack is imported then, so the web processes, which only check Twilio's signatures,
    never load it (about 6 MB of memory each)."""
    from twilio.rest import Client

    http_client = _PooledHttpClient(settings.TWILIO_API_BASE_URL or "https://api.twilio.com", timeout=10)
    return Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)


class _PooledHttpClient:
    """Twilio's HTTP client interface (``twilio.http.HttpClient``) on urllib3's connection
    pool, the layer under Twilio's own requests-based client, which spent more CPU building
    each request (hooks, cookies, the environment re-read) than urllib3 spends sending it.

    Every request goes to ``base_url``'s scheme and host (api.twilio.com, or
    TWILIO_API_BASE_URL: the tests' fake, a regional edge, a proxy) with the path Twilio's
    library chose. The environment is read once, here, as requests would read it: a proxy
    from HTTPS_PROXY/HTTP_PROXY unless NO_PROXY names the host, and the CA bundle from
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE (else certifi's). Connections are kept alive,
    redirects not followed, nothing retried (the Celery task retries)."""

    is_async = False

    def __init__(self, base_url: str, *, timeout: float):
        import urllib.request

        import certifi
        import urllib3

        self.timeout = timeout
        self._base = urlsplit(base_url)
        host = self._base.hostname or ""
        proxies = {} if urllib.request.proxy_bypass(host) else urllib.request.getproxies()
        self.proxy_url = proxies.get(self._base.scheme)
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
        options: dict[str, Any] = {"maxsize": 8, "retries": False, "ca_certs": ca_bundle, "cert_reqs": "CERT_REQUIRED"}
        self._pool: urllib3.PoolManager
        if self.proxy_url:
            self._pool = urllib3.ProxyManager(self.proxy_url, **options)
        else:
            self._pool = urllib3.PoolManager(**options)
        self._errors = (urllib3.exceptions.HTTPError, OSError)

    def request(
        self, method, url, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        from twilio.http.response import Response

        parts = urlsplit(url)
        query = urlencode(_present(params), doseq=True) if params else parts.query
        target = urlunsplit((self._base.scheme, self._base.netloc, parts.path, query, ""))
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        body = None
        if data is not None:
            if headers.get("Content-Type") in ("application/json", "application/scim+json"):
                body = json.dumps(data)
            else:
                body = urlencode(_present(data), doseq=True)
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            response = self._pool.request(
                method.upper(),
                target,
                body=body,
                headers=headers,
                redirect=allow_redirects,
                timeout=timeout or self.timeout,
            )
        except self._errors as exc:
            raise TwilioException(f"Twilio could not be reached: {type(exc).__name__}") from None
        return Response(response.status, response.data.decode("utf-8", "replace"), response.headers)


def _present(values: dict) -> dict:
    """Form values as requests sends them: a key whose value is None is left out."""
    return {key: value for key, value in values.items() if value is not None}


def sms_send(*, to: str, body: str, status_callback: str) -> str:
    """Send one text and return the provider's message id. Raises SendError.

    The body holds a secret: it is never logged, and neither is the recipient's full number.
    """
    if settings.SMS_DEV_OUTBOX:
        return _outbox_send(to=to, body=body)
    sender = (
        {"messaging_service_sid": settings.TWILIO_MESSAGING_SERVICE_SID}
        if settings.TWILIO_MESSAGING_SERVICE_SID
        else {"from_": settings.TWILIO_FROM_NUMBER}
    )
    try:
        message = _client().messages.create(to=to, body=body, status_callback=status_callback, **sender)
    except TwilioRestException as exc:
        raise _send_error(exc.status, exc.code) from None
    except (TwilioException, OSError) as exc:
        logger.warning("Twilio unreachable: %s", type(exc).__name__)
        raise SendError("Twilio could not be reached", permanent=False) from None
    return message.sid


def _send_error(status: int | None, code: int | None) -> SendError:
    """Twilio's refusal as a SendError: 429 and 5xx are transient, other 4xx permanent."""
    transient = status is None or status == 429 or status >= 500
    if code in PERMANENT_ERRORS:
        reason, transient = PERMANENT_ERRORS[code], False
    elif status in (401, 403):
        reason = "Twilio refused the portal's credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
        logger.error("Twilio refused the credentials (HTTP %s, error %s)", status, code)
    elif transient:
        reason = f"Twilio is temporarily unavailable (HTTP {status}, error {code})"
    else:
        reason = f"Twilio refused the message (error {code or status})"
    logger.warning("Twilio refused a message: status=%s code=%s transient=%s", status, code, transient)
    return SendError(reason, permanent=not transient, code=str(code or status or ""))


def _outbox_send(*, to: str, body: str) -> str:
    from validation.models import OutboxMessage

    message_id = "DEV" + uuid.uuid4().hex
    OutboxMessage.objects.create(to=to, body=body, provider_message_id=message_id)
    logger.info("SMS to the development outbox (open /dev/outbox/ to read it as the phone)")
    return message_id


def twilio_signature_valid(request: HttpRequest) -> bool:
    """Whether a webhook carries Twilio's X-Twilio-Signature for this request.

    Twilio signs the URL it was given (PUBLIC_BASE_URL + path, query included), not the
    Host the request arrived with behind a proxy, so the URL is rebuilt from settings.
    """
    signature = request.headers.get("X-Twilio-Signature")
    if not signature or settings.SMS_DEV_OUTBOX or not settings.TWILIO_AUTH_TOKEN:
        return False
    url = str(settings.PUBLIC_BASE_URL).rstrip("/") + request.get_full_path()
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, request.POST, signature)
