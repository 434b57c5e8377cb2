"""The technician's side of manager and peer approvals: ask the manager, or pick a peer
from the directory of the person's organisation. Object URLs resolve through the scoped
selectors (another organisation's request or person is a 404); the service refuses a
peer from another organisation, the person themself and the technician."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from accounts.selectors import person_get_for_user
from validation import approval_selectors, selectors, services
from validation.models import APPROVAL_METHODS, Method
from validation.views.technician import _after_action

QUERY_MAX_LENGTH = 100


@require_POST
@login_required
def approval_start(request: HttpRequest, pk: int) -> HttpResponse:
    user = cast(User, request.user)
    verification = selectors.verification_scoped_for_user(user=user, pk=pk)
    method = request.POST.get("method", "")
    if method not in APPROVAL_METHODS:
        messages.error(request, "Choose a manager or a peer approval.")
        return _after_action(request, pk)
    peer = None
    if method == Method.PEER_APPROVAL:
        peer_id = request.POST.get("peer", "")
        if not (peer_id.isascii() and peer_id.isdigit() and len(peer_id) < 12):
            messages.error(request, "Choose the peer who should approve.")
            return _after_action(request, pk)
        peer = person_get_for_user(user=user, pk=int(peer_id))
    try:
        challenge = services.approval_start(
            actor=user, verification=verification, method=method, peer=peer, request=request
        )
    except services.VerificationError as exc:
        messages.error(request, exc.message)
    else:
        who = challenge.approval.approver
        messages.success(request, f"Approval link on its way to {who} ({challenge.destination_masked}).")
    return _after_action(request, pk)


@require_GET
@login_required
def peer_picker(request: HttpRequest, pk: int) -> HttpResponse:
    user = cast(User, request.user)
    verification = selectors.verification_get_for_user(user=user, pk=pk)
    query = request.GET.get("q", "").strip()[:QUERY_MAX_LENGTH]
    candidates = approval_selectors.peer_candidates(user=user, verification=verification, query=query) if query else []
    context = {
        "verification": verification,
        "query": query,
        "candidates": candidates,
        "can_act": verification.is_open and verification.technician_id == user.pk,
    }
    return render(request, "validation/technician/peer_picker.html", context)
