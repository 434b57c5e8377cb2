"""The auditor's pages. Every view takes the user's ``AuditScope`` from ``audit_view``,
which answers 403 to staff who may not read the log (technicians, approvers)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render

from accounts.models import User
from audit.selectors import AuditScope, audit_scope_for_user


def audit_view(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Signed in, allowed to audit; the view gets ``scope`` as its second argument."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        try:
            scope: AuditScope = audit_scope_for_user(user=cast(User, request.user))
        except PermissionDenied:
            return render(request, "audit/forbidden.html", status=403)
        return view(request, scope, *args, **kwargs)

    return login_required(wrapper)
