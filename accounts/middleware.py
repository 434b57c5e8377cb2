"""Session and MFA rules that apply to every staff request, admin included."""

from __future__ import annotations

from datetime import datetime

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from audit.events import EventType
from audit.recorder import security_event_record

LOGIN_AT_KEY = "portal_login_at"

# Paths a signed-in user without an authenticator may still open: enrolment, logout,
# email verification and static files. Everything else sends them to enrol.
_ENROLMENT_PREFIXES = (
    "/accounts/2fa/",
    "/accounts/reauthenticate/",
    "/accounts/logout/",
    "/accounts/confirm-email/",
    "/static/",
)


class SessionLimitMiddleware:
    """Ends a session 12 hours (SESSION_ABSOLUTE_LIMIT) after sign-in, however active.

    The idle limit is the session cookie age, renewed on every request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated:
            started = request.session.get(LOGIN_AT_KEY)
            if started is None:
                request.session[LOGIN_AT_KEY] = timezone.now().isoformat()
            elif timezone.now() - datetime.fromisoformat(started) >= settings.SESSION_ABSOLUTE_LIMIT:
                security_event_record(
                    event_type=EventType.AUTH_SESSION_EXPIRED, actor=user, target=user, request=request
                )
                logout(request)
                return redirect(f"{reverse('account_login')}?next={request.path}")
        return self.get_response(request)


class RequireStaffMFAMiddleware:
    """Every staff user must have an authenticator before any page (admin included) opens."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not request.path.startswith(_ENROLMENT_PREFIXES) and not is_mfa_enabled(user):
            return redirect("mfa_activate_totp")
        return self.get_response(request)
