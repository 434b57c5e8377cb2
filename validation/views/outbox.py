"""The development SMS outbox: "the phone" for a demo without Twilio.

There is no login on purpose: the person running the demo opens it in a second browser
as the phone. That is acceptable only because the page exists solely in development
mode: settings.SMS_DEV_OUTBOX is true only without Twilio credentials, and
config.settings refuses that at start-up when DEBUG is off. Otherwise every method gets
the same 404 as an unknown URL.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from validation.models import OutboxMessage
from validation.views.end_user_http import private_page

RECENT_TEXTS = 50
REFRESH_SECONDS = 3


@csrf_exempt  # read-only for every method; exempt so a POST gets the 404, not a CSRF 403
@private_page  # the texts hold live one-time links
def outbox(request: HttpRequest) -> HttpResponse:
    if not settings.SMS_DEV_OUTBOX:
        raise Http404
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"], "The outbox is read-only.")
    texts = OutboxMessage.objects.order_by("-created_at", "-id")[:RECENT_TEXTS]
    return render(request, "validation/outbox.html", {"texts": texts, "refresh_seconds": REFRESH_SECONDS})
