"""The technician's requests: ask for a role (or an extension), see a request, activate it
(through allauth's MFA re-authentication when the role says so), cancel it, and break-glass.
"""

from __future__ import annotations

import contextlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from access import selectors, services
from access.forms import AccessRequestForm, BreakGlassForm, DecisionForm
from access.models import AccessRequest, Eligibility, Grant
from access.reauth import mfa_reauthenticated_at, mfa_reauthentication_redirect
from access.views._common import staff
from accounts.models import User

APPROVER_HISTORY_LENGTH = 10


def _int_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() and len(value) < 12 else None


def _prefill(request: HttpRequest, eligibilities, grants) -> dict:
    """``?eligibility=<id>`` picks a role; ``?extends=<grant id>`` starts an extension of the
    technician's grant in force with its role, ticket and justification. Anything else is ignored."""
    extends_id = _int_param(request, "extends")
    grant: Grant | None = grants.filter(pk=extends_id).first() if extends_id else None
    if grant is None:
        eligibility_id = _int_param(request, "eligibility")
        return {"eligibility": eligibility_id} if eligibility_id else {}
    eligibility = eligibilities.filter(role=grant.role_id, organization=grant.organization_id).first()
    return {
        "eligibility": eligibility.pk if eligibility else None,
        "extends": grant.pk,
        "ticket_reference": grant.request.ticket_reference,
        "justification": grant.request.justification,
        "duration": str(int(grant.request.requested_duration.total_seconds())),
    }


@require_http_methods(["GET", "POST"])
@login_required
def request_create(request: HttpRequest) -> HttpResponse:
    user = staff(request)
    eligibilities = selectors.eligibility_list_for_technician(technician=user, at=timezone.now()).filter(
        role__break_glass=False
    )
    grants = selectors.grant_list_current_for_technician(technician=user)
    form = AccessRequestForm(
        request.POST if request.method == "POST" else None,
        initial=_prefill(request, eligibilities, grants) if request.method == "GET" else None,
        eligibilities=eligibilities,
        grants=grants,
    )
    if form.is_bound and form.is_valid():
        eligibility: Eligibility = form.cleaned_data["eligibility"]
        try:
            access_request = services.access_request_create(
                actor=user,
                role=eligibility.role,
                organization=eligibility.organization,
                justification=form.cleaned_data["justification"],
                ticket_reference=form.cleaned_data["ticket_reference"],
                duration=form.cleaned_data["duration"],
                scheduled_start=form.cleaned_data["scheduled_start"],
                extends=form.cleaned_data["extends"],
                request=request,
            )
        except services.AccessError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Request sent. The approvers of {access_request.role} have been emailed.")
            return redirect("access:request_detail", pk=access_request.pk)
    extends = form["extends"].value()
    context = {"form": form, "extending": grants.filter(pk=extends).first() if str(extends).isdigit() else None}
    return render(request, "access/request_form.html", context)


def _request_context(user: User, access_request: AccessRequest) -> dict:
    now = timezone.now()
    is_requester = access_request.technician_id == user.pk
    approvals = list(access_request.approvals.select_related("approver"))
    can_decide = (
        access_request.status == AccessRequest.Status.PENDING
        and access_request.review_expires_at > now
        and selectors.may_approve(user=user, access_request=access_request)
    )
    grant = None
    if not access_request.is_open:
        with contextlib.suppress(Grant.DoesNotExist):
            grant = access_request.grant
    return {
        "access_request": access_request,
        "approvals": approvals,
        "approved_count": sum(a.decision == "approve" for a in approvals),
        "is_requester": is_requester,
        "can_decide": can_decide,
        "can_activate": is_requester and access_request.status == AccessRequest.Status.APPROVED,
        "can_cancel": is_requester and access_request.is_open,
        "grant": grant,
        "history": (
            selectors.grant_history_for(technician=access_request.technician, limit=APPROVER_HISTORY_LENGTH)
            if not is_requester
            else []
        ),
        "decision_form": DecisionForm(),
    }


@require_GET
@login_required
@never_cache
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff(request)
    access_request = selectors.access_request_get_for_user(user=user, pk=pk)
    return render(request, "access/request_detail.html", _request_context(user, access_request))


@require_http_methods(["GET", "POST"])
@login_required
def request_activate(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: confirm the activation (where allauth's re-authentication returns if it cannot
    replay the POST). POST: activate; a role that needs a fresh MFA step sends the technician
    through allauth's re-authentication first, which then replays this POST."""
    user = staff(request)
    access_request = selectors.access_request_get_for_user(user=user, pk=pk)
    if request.method == "GET":
        return render(request, "access/request_activate.html", _request_context(user, access_request))
    try:
        grant = services.grant_activate(
            actor=user,
            access_request=access_request,
            reauthenticated_at=mfa_reauthenticated_at(request),
            request=request,
        )
    except services.ReauthenticationRequired:
        return mfa_reauthentication_redirect(request)
    except services.AccessError as exc:
        messages.error(request, exc.message)
        return redirect("access:request_detail", pk=pk)
    messages.success(request, f"{grant.role} in {grant.organization} is active until {grant.expires_at:%H:%M:%S} UTC.")
    return redirect("access:grant_detail", pk=grant.pk)


@require_POST
@login_required
def request_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff(request)
    access_request = selectors.access_request_get_for_user(user=user, pk=pk)
    try:
        services.access_request_cancel(actor=user, access_request=access_request, request=request)
    except services.AccessError as exc:
        messages.error(request, exc.message)
        return redirect("access:request_detail", pk=pk)
    messages.success(request, "Request cancelled.")
    return redirect("access:my_grants")


@require_http_methods(["GET", "POST"])
@login_required
def break_glass(request: HttpRequest) -> HttpResponse:
    """Emergency access without approval: every org admin is alerted at once and the use
    must be reviewed. MFA re-authentication as for an activation."""
    user = staff(request)
    eligibilities = selectors.eligibility_list_for_technician(technician=user, at=timezone.now()).filter(
        role__break_glass=True
    )
    form = BreakGlassForm(
        request.POST if request.method == "POST" else None,
        initial={"eligibility": _int_param(request, "eligibility")},
        eligibilities=eligibilities,
    )
    if form.is_bound and form.is_valid():
        eligibility: Eligibility = form.cleaned_data["eligibility"]
        try:
            grant = services.break_glass_activate(
                actor=user,
                role=eligibility.role,
                organization=eligibility.organization,
                justification=form.cleaned_data["justification"],
                ticket_reference=form.cleaned_data["ticket_reference"],
                reauthenticated_at=mfa_reauthenticated_at(request),
                request=request,
            )
        except services.ReauthenticationRequired:
            return mfa_reauthentication_redirect(request)
        except services.AccessError as exc:
            form.add_error(None, exc.message)
        else:
            messages.warning(
                request, f"Break-glass access to {grant.organization} is active. Every org admin has been alerted."
            )
            return redirect("access:grant_detail", pk=grant.pk)
    return render(request, "access/break_glass.html", {"form": form, "has_roles": eligibilities.exists()})
