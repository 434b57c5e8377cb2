"""The development SMS outbox: "the phone" for a demo without Twilio.

There is no login on purpose: the person running the demo opens it in a second browser
as the phone. That is acceptable only because the page exists solely in development
mode: settings.SMS_DEV_OUTBOX is true only without Twilio credentials, and
config.settings refuses that at start-up when DEBUG is off. Otherwise every method gets
the same 404 as an unknown URL.

The phone can also answer a text (an SMS-reply challenge): the reply goes through the
same service as Twilio's inbound webhook, and the portal's answer lands in the outbox.
"""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from validation.models import OutboxMessage
from validation.services import replies
from validation.views.end_user_http import end_user_page, private_page

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


class OutboxReplyForm(forms.Form):
    to = forms.CharField(max_length=20, widget=forms.HiddenInput)
    body = forms.CharField(max_length=1600, required=False, label="Reply", strip=False)

    def clean_to(self) -> str:
        to = self.cleaned_data["to"]
        if not OutboxMessage.objects.filter(to=to).exists():
            raise forms.ValidationError("No text was sent to this number.")
        return to


@csrf_exempt  # the CSRF check is end_user_page's, after the 404 outside development mode
def outbox_reply(request: HttpRequest) -> HttpResponseBase:
    if not settings.SMS_DEV_OUTBOX:
        raise Http404
    return _outbox_reply(request)


@end_user_page
def _outbox_reply(request: HttpRequest) -> HttpResponse:
    """GET: a reply box (on its own page: the outbox reloads itself). POST: the reply, as
    the phone of record would send it; the portal's answer appears in the outbox."""
    form = OutboxReplyForm(request.POST if request.method == "POST" else request.GET)
    if request.method != "POST" or not form.is_valid():
        status = 400 if request.method == "POST" else 200
        return render(request, "validation/outbox_reply.html", {"form": form}, status=status)
    to = form.cleaned_data["to"]
    body = form.cleaned_data["body"]
    outcome = replies.sms_reply_receive(message_sid="DEV" + uuid.uuid4().hex, from_number=to, body=body)
    answer = replies.reply_text(outcome)
    if answer:
        OutboxMessage.objects.create(to=to, body=answer, provider_message_id="DEV" + uuid.uuid4().hex)
    return redirect("validation:outbox")
