"""Small helpers shared by the access views."""

from __future__ import annotations

from typing import cast

from django.http import HttpRequest
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.models import User

FRAGMENT_HEADER = "X-Portal-Fragment"


def staff(request: HttpRequest) -> User:
    return cast(User, request.user)


def form_errors(form) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


def back(request: HttpRequest, default: str, *args):
    """Redirect to the form's ``next`` (a path on this site) or to the named ``default``."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(default, *args)
