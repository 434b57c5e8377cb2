"""Approvers: the queue of requests they may decide, with the justification, the ticket and
the technician's recent grants; approve or deny with a comment.

The requester is never offered a decision on their own request, and the service refuses
it anyway (and records the attempt), whatever is posted.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from access import selectors, services
from access.forms import DecisionForm
from access.views._common import back, form_errors, staff

QUEUE_PAGE_SIZE = 20
HISTORY_LENGTH = 5


@require_GET
@login_required
@never_cache
def approval_queue(request: HttpRequest) -> HttpResponse:
    user = staff(request)
    page = Paginator(selectors.approval_queue_for(user=user), QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    histories: dict[int, list] = {}
    for access_request in page:
        if access_request.technician_id not in histories:
            histories[access_request.technician_id] = selectors.grant_history_for(
                technician=access_request.technician, limit=HISTORY_LENGTH
            )
        access_request.history = histories[access_request.technician_id]  # type: ignore[attr-defined]  # for the template
    return render(request, "access/approvals.html", {"page": page, "decision_form": DecisionForm()})


def _decide(request: HttpRequest, pk: int, decide, done: str) -> HttpResponse:
    user = staff(request)
    access_request = selectors.access_request_get_for_user(user=user, pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return back(request, "access:request_detail", pk)
    try:
        decided = decide(
            actor=user, access_request=access_request, comment=form.cleaned_data["comment"], request=request
        )
    except services.AccessError as exc:  # SelfApprovalError included
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{done}: {decided.role} for {decided.technician} ({decided.get_status_display()}).")
    return back(request, "access:request_detail", pk)


@require_POST
@login_required
def request_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.access_request_approve, "Approval recorded")


@require_POST
@login_required
def request_deny(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.access_request_deny, "Denied")
