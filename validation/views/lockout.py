"""Fraud reports from a verification email, and lifting a verification lock.

The email's "I didn't request this" page is an end-user page like the push page: no
login, the signed one-time link is the credential, GET shows and only POST reports.
Lifting a lock is a staff action for a second org admin (``services.lockout``).
"""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import User
from accounts.selectors import person_get_for_user
from audit.events import ActorKind, EventType
from audit.recorder import security_event_record
from validation import links
from validation.forms import LockLiftForm
from validation.services import VerificationError, lockout
from validation.views.end_user_http import end_user_page


@end_user_page
def fraud_report(request: HttpRequest, token: str) -> HttpResponse:
    try:
        challenge = lockout.email_fraud_challenge_for_link(token)
        if request.method == "POST":
            lockout.email_fraud_report(token=token, request=request)
    except links.BadLink as exc:
        return _link_refused(request, exc, token=token)
    verification = challenge.request
    if request.method == "POST":
        return render(request, "validation/end_user/push_fraud.html", {"organization": verification.organization})
    context = {
        "organization": verification.organization,
        "technician_name": verification.technician.full_name or "A helpdesk technician",
        "action": verification.get_action_display(),
        "ticket": verification.ticket_reference,
    }
    return render(request, "validation/end_user/fraud_report.html", context)


def _link_refused(request: HttpRequest, exc: links.BadLink, *, token: str) -> HttpResponse:
    """A used or expired link is gone (410), a forged or mangled one is not found (404)."""
    gone = links.link_signed_here(token, purpose=links.FRAUD_REPORT)
    if request.method == "POST":
        security_event_record(
            event_type=EventType.VERIFICATION_LINK_REJECTED,
            actor_kind=ActorKind.END_USER,
            details={"page": "fraud_report", "reason": exc.reason},
            request=request,
        )
    context = {
        "title": "This link can no longer be used" if gone else "This link does not work",
        "message": exc.reason,
        "hint": "Nothing has been changed. If you think someone is pretending to be you, call your helpdesk "
        "on the number you usually use.",
    }
    return render(request, "validation/end_user/problem.html", context, status=410 if gone else 404)


@require_POST
@login_required
def lock_lift(request: HttpRequest, pk: int) -> HttpResponse:
    person = person_get_for_user(user=cast(User, request.user), pk=pk)
    form = LockLiftForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("validation:start", pk=person.pk)
    try:
        lockout.person_lock_lift(
            actor=cast(User, request.user), person=person, reason=form.cleaned_data["reason"], request=request
        )
    except VerificationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Verification is unlocked for {person.full_name}; their failure count is reset.")
    return redirect("validation:start", pk=person.pk)
