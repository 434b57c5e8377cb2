"""When the signed-in technician last proved MFA in this session, for ``grant_activate``
and ``break_glass_activate`` (their ``reauthenticated_at`` argument).

allauth records each authentication step in the session; an MFA step is recorded at
sign-in and by its re-authentication page (URL name ``mfa_reauthenticate``). A view that
gets ReauthenticationRequired sends the technician there with ``?next=`` back to itself.
"""

from __future__ import annotations

from datetime import UTC, datetime

from allauth.account.adapter import get_adapter
from allauth.account.internal.flows.login import get_authentication_records
from allauth.account.internal.flows.reauthentication import suspend_request
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse


def mfa_reauthenticated_at(request: HttpRequest) -> datetime | None:
    """The time of the latest MFA step (TOTP, recovery code or passkey) recorded in this
    session for ``request.user``, or None. allauth stores it as epoch seconds."""
    records = get_authentication_records(request, getattr(request, "user", None))
    times = [r["at"] for r in records if r.get("method") == "mfa" and isinstance(r.get("at"), int | float)]
    return datetime.fromtimestamp(max(times), tz=UTC) if times else None


def mfa_reauthentication_redirect(request: HttpRequest) -> HttpResponseRedirect:
    """Send the technician through allauth's MFA re-authentication (``mfa_reauthenticate``,
    or the passkey page for users with passkeys only) with ``?next=`` back to this URL.

    For a POST (an activation), allauth keeps the submitted form in the session and, once
    the MFA step succeeds, runs it again (``resume_request``): the activation goes ahead with
    the fresh step. Should that state be lost, ``next`` still leads back to the page, which
    offers the activation again. A password re-authentication is not offered: it is no MFA step.
    """
    methods = get_adapter(request).get_reauthentication_methods(request.user)
    mfa_urls = [m["url"] for m in methods if str(m["id"]).startswith("mfa_reauthenticate")]
    return suspend_request(request, mfa_urls[0] if mfa_urls else reverse("mfa_reauthenticate"))
