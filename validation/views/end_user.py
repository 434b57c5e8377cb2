"""Pages an end user opens on their phone from a one-time link in a text message.

No login: the signed link is the credential. So the pages show only what the person
needs to decide (who asks, for which organisation, action and ticket; never a full phone
number, an email or an employee id), never link onward with the token, and record a
security event when a bad link is used to answer. GET never changes anything.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import qrcode
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe
from qrcode.image.svg import SvgPathImage

from audit.events import ActorKind, EventType
from audit.recorder import security_event_record
from validation import links, services
from validation.models import Challenge, PersonAuthenticator, VerificationRequest
from validation.services.enrollment import MAX_ENROLLMENT_ATTEMPTS
from validation.views.end_user_http import end_user_page

PUSH_RESULT_TEMPLATES = {
    "approved": "validation/end_user/push_approved.html",
    "wrong_number": "validation/end_user/push_wrong_number.html",
    "denied": "validation/end_user/push_denied.html",
    "fraud": "validation/end_user/push_fraud.html",
}
TOTP_CODE = re.compile(r"[0-9]{6}")


@end_user_page
def push_respond(request: HttpRequest, token: str) -> HttpResponse:
    try:
        challenge = services.push_challenge_for_link(token)
    except links.BadLink as exc:
        return _link_refused(request, exc, token=token, purpose=links.PUSH)
    if request.method != "POST":
        return render(request, "validation/end_user/push.html", _push_context(challenge))
    try:
        outcome = services.push_respond(token=token, choice=request.POST.get("choice", ""), request=request)
    except links.BadLink as exc:
        return _link_refused(request, exc, token=token, purpose=links.PUSH)
    except ValueError as exc:  # not one of the offered choices: nothing was changed
        return render(request, "validation/end_user/push.html", _push_context(challenge, error=str(exc)), status=400)
    verification = challenge.request
    verification.refresh_from_db(fields=["status"])
    verified = verification.status == VerificationRequest.Status.VERIFIED
    return render(request, PUSH_RESULT_TEMPLATES[outcome], {**_push_context(challenge), "verified": verified})


@end_user_page
def enroll(request: HttpRequest, token: str) -> HttpResponse:
    try:
        authenticator = services.enrollment_for_link(token)
    except links.BadLink as exc:
        return _link_refused(request, exc, token=token, purpose=links.ENROLLMENT)
    if request.method != "POST":
        return render(request, "validation/end_user/enroll.html", _enroll_context(authenticator))
    code = "".join(request.POST.get("code", "").split())  # "123 456" as the app shows it
    if not TOTP_CODE.fullmatch(code):  # not counted as an attempt
        error = "Enter the 6-digit code your authenticator app shows, digits only."
        return render(request, "validation/end_user/enroll.html", _enroll_context(authenticator, error), status=400)
    try:
        enrolled = services.enrollment_confirm(token=token, code=code, request=request)
    except links.BadLink as exc:
        return _link_refused(request, exc, token=token, purpose=links.ENROLLMENT)
    organization = authenticator.person.organization
    if enrolled:
        return render(request, "validation/end_user/enroll_done.html", {"organization": organization})
    try:
        authenticator = services.enrollment_for_link(token)
    except links.BadLink:  # that was the last attempt
        return _problem(
            request,
            title="That code is not right",
            message="That was the last attempt, so this link no longer works.",
            hint="Your authenticator was not set up. Ask the helpdesk to send you a new link.",
            status=410,
        )
    left = MAX_ENROLLMENT_ATTEMPTS - authenticator.enrollment_attempts
    error = f"That code is not right. {left} attempt{'' if left == 1 else 's'} left."
    return render(request, "validation/end_user/enroll.html", _enroll_context(authenticator, error), status=400)


def _push_context(challenge: Challenge, *, error: str = "") -> dict:
    verification = challenge.request
    seconds_left = max(int((challenge.expires_at - timezone.now()).total_seconds()), 0)
    return {
        "organization": verification.organization,
        # The name only: a technician without one is not identified by their email here.
        "technician_name": verification.technician.full_name or "A helpdesk technician",
        "action": verification.get_action_display(),
        "ticket": verification.ticket_reference,
        "choices": challenge.match_choices,
        "seconds_left": seconds_left,
        "minutes_left": (seconds_left + 59) // 60,
        "error": error,
    }


def _enroll_context(authenticator: PersonAuthenticator, error: str = "") -> dict:
    uri = services.enrollment_otpauth_uri(authenticator)
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    svg = qrcode.make(uri, image_factory=SvgPathImage, border=2).to_string(encoding="unicode")
    return {
        "organization": authenticator.person.organization,
        "otpauth_uri": uri,
        # Made by qrcode from our own URI: path data only, no text from the URI.
        "qr_svg": mark_safe(svg),  # noqa: S308
        "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
        "error": error,
    }


def _link_refused(request: HttpRequest, exc: links.BadLink, *, token: str, purpose: str) -> HttpResponse:
    """A used or expired link is gone (410), a forged or mangled one is not found (404)."""
    gone = links.link_signed_here(token, purpose=purpose)
    enrolment = purpose == links.ENROLLMENT
    if request.method == "POST":
        security_event_record(
            event_type=EventType.VERIFICATION_LINK_REJECTED,
            actor_kind=ActorKind.END_USER,
            details={"page": "enrolment" if enrolment else "approval", "reason": exc.reason},
            request=request,
        )
    next_step = (
        "If you still need to set up your app, ask the helpdesk for a new link."
        if enrolment
        else "If you are on a call with the helpdesk, ask them to send you a new request."
    )
    return _problem(
        request,
        title="This link can no longer be used" if gone else "This link does not work",
        message=exc.reason,
        hint=f"Nothing has been changed. {next_step}",
        status=410 if gone else 404,
    )


def _problem(request: HttpRequest, *, title: str, message: str, hint: str, status: int) -> HttpResponse:
    context = {"title": title, "message": message, "hint": hint}
    return render(request, "validation/end_user/problem.html", context, status=status)
