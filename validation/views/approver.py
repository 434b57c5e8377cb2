"""The approver's pages: a manager or peer opens the one-time link from a text or email.

Same rules as the person's pages (``validation.views.end_user``): the signed link is the
credential, GET changes nothing, every form is a plain POST with a CSRF token and works
without JavaScript, full phone numbers and emails are never shown. Before the approver
has confirmed who they are (a code sent to their own phone of record), the page says
nothing about the request; after, a cookie scoped to the link's path holds the proof
that lets this browser (and no other) approve or deny.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from audit.events import ActorKind, EventType
from audit.recorder import security_event_record
from validation import links, services
from validation.channels.approval import email_masked
from validation.models import Challenge, ChallengeApproval, Method
from validation.services.approvals import MAX_CODES
from validation.services.approver import approver_proof_valid
from validation.views.end_user_http import end_user_page

PROOF_COOKIE = "approver_proof"
PAGE = "validation/end_user/approver.html"
DONE = "validation/end_user/approver_done.html"


@end_user_page
def approver(request: HttpRequest, token: str) -> HttpResponse:
    if request.method == "POST":
        return HttpResponseNotAllowed(["GET", "HEAD"])
    try:
        challenge = services.approval_for_link(token)
    except links.BadLink as exc:
        return _refused(request, exc, token=token)
    return render(request, PAGE, _context(request, challenge, token))


@end_user_page
def approver_code(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return redirect("validation:approver", token=token)
    try:
        services.approver_code_request(token=token, request=request)
    except links.BadLink as exc:
        return _refused(request, exc, token=token)
    except services.VerificationError as exc:
        return _page_with_error(request, token, exc.message)
    return redirect(reverse("validation:approver", kwargs={"token": token}) + "#code", permanent=False)


@end_user_page
def approver_confirm(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return redirect("validation:approver", token=token)
    code = "".join(request.POST.get("code", "").split())
    if not (code.isascii() and code.isdigit() and len(code) in (6, 8)):  # not counted as an attempt
        return _page_with_error(request, token, "Enter the 6 or 8 digits of the code we sent you, digits only.")
    try:
        proof = services.approver_code_confirm(token=token, code=code, request=request)
    except links.BadLink as exc:
        return _refused(request, exc, token=token)
    except services.VerificationError as exc:
        return _page_with_error(request, token, exc.message)
    if proof is None:
        try:
            challenge = services.approval_for_link(token)
        except links.BadLink:
            return _problem(
                request,
                title="That code is not right",
                message="That was the last attempt, so this link no longer works. Nothing was approved.",
                status=410,
            )
        left = challenge.attempts_left
        error = f"That code is not right. {left} attempt{'' if left == 1 else 's'} left."
        return _page_with_error(request, token, error)
    try:
        expires_at = services.approval_for_link(token).expires_at
    except links.BadLink as exc:  # the request ended in the meantime
        return _refused(request, exc, token=token)
    response = redirect("validation:approver", token=token)
    response.set_cookie(
        PROOF_COOKIE,
        proof,
        max_age=max(int((expires_at - timezone.now()).total_seconds()), 1),
        path=reverse("validation:approver", kwargs={"token": token}),
        secure=settings.SESSION_COOKIE_SECURE or request.is_secure(),  # as the session cookie, behind a TLS proxy too
        httponly=True,
        samesite="Lax",
    )
    return response


@end_user_page
def approver_decide(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return redirect("validation:approver", token=token)
    try:
        challenge = services.approval_for_link(token)
        outcome = services.approval_decide(
            token=token,
            decision=request.POST.get("decision", ""),
            proof=request.COOKIES.get(PROOF_COOKIE, ""),
            request=request,
        )
    except links.BadLink as exc:
        return _refused(request, exc, token=token)
    except (ValueError, services.VerificationError) as exc:
        return _page_with_error(request, token, getattr(exc, "message", str(exc)))
    response = render(request, DONE, {**_facts(challenge), "outcome": outcome})
    response.delete_cookie(PROOF_COOKIE, path=reverse("validation:approver", kwargs={"token": token}))
    return response


def _page_with_error(request: HttpRequest, token: str, error: str) -> HttpResponse:
    try:
        challenge = services.approval_for_link(token)
    except links.BadLink as exc:
        return _refused(request, exc, token=token)
    return render(request, PAGE, _context(request, challenge, token, error=error), status=400)


def _context(request: HttpRequest, challenge: Challenge, token: str, *, error: str = "") -> dict:
    approval: ChallengeApproval = challenge.approval
    confirmed_here = approver_proof_valid(approval, request.COOKIES.get(PROOF_COOKIE, ""))
    by_email = approval.link_sent_via == ChallengeApproval.Delivery.EMAIL
    approver = approval.approver
    landing = reverse("validation:approver", kwargs={"token": token})
    return {
        **(_facts(challenge) if confirmed_here else {"organization": challenge.request.organization}),
        # Forms post to relative URLs, so the page's HTML never holds the link's token.
        "base": "./" if request.path == landing else "../",
        "confirmed": confirmed_here,
        "code_requested": approval.codes_sent > 0,
        "can_send_code": approval.codes_sent < MAX_CODES,
        "code_destination": email_masked(approver.email) if by_email else approver.masked_phone,
        "code_by_email": by_email,
        "error": error,
    }


def _facts(challenge: Challenge) -> dict:
    """What the approver sees once they confirmed who they are: never a full phone or email."""
    verification = challenge.request
    person = verification.person
    return {
        "organization": verification.organization,
        "technician_name": verification.technician.full_name or "A helpdesk technician",
        "action": verification.get_action_display(),
        "ticket": verification.ticket_reference,
        "person_name": person.full_name,
        "person_phone": person.masked_phone,
        "person_email": email_masked(person.email),
        "person_department": person.department,
        "as_manager": challenge.method == Method.MANAGER_APPROVAL,
        "expires_at": challenge.expires_at,
    }


def _refused(request: HttpRequest, exc: links.BadLink, *, token: str) -> HttpResponse:
    """A used or expired link is gone (410), a forged or mangled one is not found (404)."""
    gone = links.link_signed_here(token, purpose=links.APPROVAL)
    if request.method == "POST":
        security_event_record(
            event_type=EventType.VERIFICATION_LINK_REJECTED,
            actor_kind=ActorKind.END_USER,
            details={"page": "approver", "reason": exc.reason},
            request=request,
        )
    return _problem(
        request,
        title="This link can no longer be used" if gone else "This link does not work",
        message=f"{exc.reason} Nothing has been approved or changed.",
        status=410 if gone else 404,
    )


def _problem(request: HttpRequest, *, title: str, message: str, status: int) -> HttpResponse:
    hint = "If the helpdesk still needs your approval, they can send you a new link."
    context = {"title": title, "message": message, "hint": hint}
    return render(request, "validation/end_user/problem.html", context, status=status)
