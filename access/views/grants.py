"""The technician's grants ("my grants", with a live countdown), one grant's page, and what
can be done to a grant: release ("I'm done"), revoke (org admins) and the break-glass review.

The countdown is only a display: whether a grant allows anything is decided by
``access.authorization`` from the grant row and the database's clock, whatever the page shows.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from access import selectors, services
from access.forms import ReasonForm, ReviewForm
from access.models import Grant
from access.views._common import FRAGMENT_HEADER, back, form_errors, staff
from accounts.models import User

HISTORY_LENGTH = 10
LIVE_STATES = ("active", "scheduled")


def _my_grants_live_context(user: User) -> dict:
    now = timezone.now()
    grants = list(selectors.grant_list_current_for_technician(technician=user))
    history = selectors.grant_history_for(technician=user, limit=HISTORY_LENGTH)
    for grant in [*grants, *history]:
        grant.state = selectors.grant_state(grant, at=now)  # type: ignore[attr-defined]  # for the templates
    open_requests = list(selectors.access_request_list_open_for_technician(technician=user))
    return {
        "grants": grants,
        "open_requests": open_requests,
        "history": history,
        "polling": bool(grants or open_requests),
    }


@require_GET
@login_required
@never_cache
def my_grants(request: HttpRequest) -> HttpResponse:
    user = staff(request)
    eligibilities = list(selectors.eligibility_list_for_technician(technician=user, at=timezone.now()))
    context = {
        **_my_grants_live_context(user),
        "eligibilities": eligibilities,
        "break_glass_offered": any(e.role.break_glass for e in eligibilities),
    }
    return render(request, "access/my_grants.html", context)


@require_GET
@login_required
@never_cache
def my_grants_live(request: HttpRequest) -> HttpResponse:
    """The live part of "my grants" for htmx: grants in force or scheduled, open requests, recent grants."""
    response = render(request, "access/_my_grants_live.html", _my_grants_live_context(staff(request)))
    response[FRAGMENT_HEADER] = "my-grants-live"  # the page reloads on anything else (a sign-in page)
    return response


def _grant_context(user: User, grant: Grant) -> dict:
    state = selectors.grant_state(grant, at=timezone.now())
    grant.state = state  # type: ignore[attr-defined]  # for the templates
    holder = grant.technician_id == user.pk
    administers = selectors.may_administer_access(user, grant.organization)
    return {
        "grant": grant,
        "polling": state in LIVE_STATES,
        "is_holder": holder,
        "can_release": holder and state in LIVE_STATES,
        "can_extend": holder and state == "active" and not grant.break_glass,
        "can_revoke": administers and state in LIVE_STATES,
        "can_review": administers and grant.review_pending and not holder,
    }


@require_GET
@login_required
@never_cache
def grant_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff(request)
    grant = selectors.grant_get_for_user(user=user, pk=pk)
    context = {**_grant_context(user, grant), "approvals": grant.request.approvals.select_related("approver")}
    return render(request, "access/grant_detail.html", context)


@require_GET
@login_required
@never_cache
def grant_live(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff(request)
    grant = selectors.grant_get_for_user(user=user, pk=pk)
    response = render(request, "access/_grant_live.html", _grant_context(user, grant))
    response[FRAGMENT_HEADER] = "grant-live"
    return response


@require_POST
@login_required
def grant_release(request: HttpRequest, pk: int) -> HttpResponse:
    """ "I'm done": the holder ends their grant now."""
    user = staff(request)
    grant = selectors.grant_get_for_user(user=user, pk=pk)
    try:
        services.grant_release(actor=user, grant=grant, request=request)
    except services.AccessError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{grant.role} in {grant.organization} released. It allows nothing any more.")
    return back(request, "access:grant_detail", pk)


@require_POST
@login_required
def grant_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    return _grant_decision(
        request,
        pk,
        ReasonForm,
        lambda user, grant, data: services.grant_revoke(
            actor=user, grant=grant, reason=data["reason"], request=request
        ),
        lambda grant: f"Grant of {grant.role} to {grant.technician} revoked.",
    )


@require_POST
@login_required
def break_glass_review(request: HttpRequest, pk: int) -> HttpResponse:
    return _grant_decision(
        request,
        pk,
        ReviewForm,
        lambda user, grant, data: services.break_glass_review(
            actor=user, grant=grant, notes=data["notes"], request=request
        ),
        lambda grant: f"Break-glass use by {grant.technician} reviewed.",
    )


def _grant_decision(request: HttpRequest, pk: int, form_class, act, success) -> HttpResponse:
    """An org admin's decision on a grant with a written reason: the form, one service call,
    its message, back to the grant."""
    user = staff(request)
    grant = selectors.grant_get_for_user(user=user, pk=pk)
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return back(request, "access:grant_detail", pk)
    try:
        act(user, grant, form.cleaned_data)
    except services.AccessError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success(grant))
    return back(request, "access:grant_detail", pk)
    try:
        services.break_glass_review(actor=user, grant=grant, notes=form.cleaned_data["notes"], request=request)
    except services.AccessError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Break-glass use by {grant.technician} reviewed.")
    return back(request, "access:grant_detail", pk)
