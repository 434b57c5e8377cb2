"""Twilio's webhooks: message status callbacks and inbound messages (replies to SMS-reply
challenges). Signature first, then one service call.

Twilio does not retry a status callback that got a 2xx, so a well-formed signed callback
for a message we do not know still gets 200. An inbound message is answered with TwiML:
an empty ``<Response/>`` or one short text. Nothing here logs or records a body.
"""

from __future__ import annotations

import logging
import re
import time
from functools import wraps
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, QueryDict
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from audit.events import EventType
from audit.recorder import security_event_record, source_ip_for
from validation import services
from validation.channels.sms import twilio_signature_valid
from validation.services import replies

logger = logging.getLogger(__name__)

MESSAGE_SID = re.compile(r"SM[0-9a-f]{32}")
ERROR_CODE = re.compile(r"[0-9]{1,10}")
# https://www.twilio.com/docs/messaging/api/message-resource#message-status-values
MESSAGE_STATUSES = frozenset(
    {
        "accepted",
        "scheduled",
        "canceled",
        "queued",
        "sending",
        "sent",
        "failed",
        "delivered",
        "undelivered",
        "receiving",
        "received",
        "read",
        "partially_delivered",
    }
)


class BadCallback(ValueError):
    """A signed callback whose fields are not what Twilio sends; the message says which."""


def _single(post: QueryDict, name: str, *, required: bool) -> str:
    values = post.getlist(name)
    if len(values) > 1:
        raise BadCallback(f"{name}: given more than once.")
    if not values or not values[0]:
        if required:
            raise BadCallback(f"{name}: missing.")
        return ""
    return values[0]


def status_callback_fields(post: QueryDict) -> dict[str, str]:
    """The arguments of ``challenge_delivery_update`` from a callback's form. Raises BadCallback."""
    message_id = _single(post, "MessageSid", required=True)
    if not MESSAGE_SID.fullmatch(message_id):
        raise BadCallback("MessageSid: expected SM followed by 32 lowercase hexadecimal digits.")
    message_status = _single(post, "MessageStatus", required=True)
    if message_status not in MESSAGE_STATUSES:
        raise BadCallback("MessageStatus: not a Twilio message status.")
    error_code = _single(post, "ErrorCode", required=False)
    if error_code and not ERROR_CODE.fullmatch(error_code):
        raise BadCallback("ErrorCode: expected a Twilio error code (1 to 10 digits).")
    return {"message_id": message_id, "message_status": message_status, "error_code": error_code}


def inbound_message_fields(post: QueryDict) -> dict[str, str]:
    """The arguments of ``sms_reply_receive`` from an inbound message's form. Raises
    BadCallback. A From that is not a phone number (a short code, another channel) is
    passed on: it matches no phone of record, so it changes nothing."""
    message_sid = _single(post, "MessageSid", required=True)
    if not replies.INBOUND_SID_PATTERN.fullmatch(message_sid):
        raise BadCallback("MessageSid: expected SM or MM followed by 32 lowercase hexadecimal digits.")
    from_number = _single(post, "From", required=True)
    return {"message_sid": message_sid, "from_number": from_number[:40], "body": _single(post, "Body", required=False)}


def twilio_configured(view):
    """404 in development outbox mode: with no Twilio account there is nothing to call back."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if settings.SMS_DEV_OUTBOX:
            raise Http404("Twilio is not configured.")
        return view(request, *args, **kwargs)

    return wrapper


def twilio_signed(view):
    """403 unless Twilio signed the request; the refusal is recorded (``_record_rejection``)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not twilio_signature_valid(request):
            reason = "invalid signature" if request.headers.get("X-Twilio-Signature") else "missing signature"
            _record_rejection(request, reason, webhook=view.__name__)
            return HttpResponseForbidden("Invalid or missing Twilio signature.", content_type="text/plain")
        return view(request, *args, **kwargs)

    return wrapper


@csrf_exempt
@twilio_configured
@require_POST
@twilio_signed
def twilio_status(request: HttpRequest) -> HttpResponse:
    """Delivery receipt for a text: sent, delivered, undelivered, failed."""
    try:
        fields = status_callback_fields(request.POST)
    except BadCallback as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    if not services.challenge_delivery_update(**fields):
        logger.info("Twilio status callback for an unknown message %s", fields["message_id"])
    return HttpResponse(content_type="text/plain")


@csrf_exempt
@twilio_configured
@require_POST
@twilio_signed
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """A text to the portal's number: a reply to an SMS-reply challenge, or anything else
    (which changes nothing)."""
    try:
        fields = inbound_message_fields(request.POST)
    except BadCallback as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    outcome = replies.sms_reply_receive(**fields, request=request)
    return twiml_response(replies.reply_text(outcome))


def twiml_response(text: str) -> HttpResponse:
    """Twilio's answer to an inbound message: nothing, or one text back to the sender."""
    message = f"<Message>{escape(text)}</Message>" if text else ""
    return HttpResponse(
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{message}</Response>', content_type="text/xml"
    )


REJECTIONS_RECORDED_PER_MINUTE = 20


def _record_rejection(request: HttpRequest, reason: str, *, webhook: str) -> None:
    """A security event per refused webhook, at most REJECTIONS_RECORDED_PER_MINUTE per
    source address: the endpoint is public, and a flood must not flood the audit log."""
    minute = int(time.time() // 60)
    key = f"validation:webhook-rejected:{source_ip_for(request)}:{minute}"
    cache.add(key, 0, 120)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        count = 1
    if count <= REJECTIONS_RECORDED_PER_MINUTE:
        security_event_record(
            event_type=EventType.VERIFICATION_WEBHOOK_REJECTED,
            request=request,
            details={"webhook": webhook, "reason": reason},
        )
    elif count == REJECTIONS_RECORDED_PER_MINUTE + 1:
        logger.warning("More than %s refused Twilio webhooks this minute from one address", count - 1)
