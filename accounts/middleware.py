"""Session and MFA rules that apply to every staff request, admin included."""

from __future__ import annotations

from datetime import datetime, timedelta

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from accounts.selectors import organization_scope_memo
from audit.events import EventType
from audit.recorder import security_event_record

LOGIN_AT_KEY = "portal_login_at"
LAST_SEEN_KEY = "portal_last_seen"
LAST_SEEN_RESOLUTION = timedelta(minutes=1)

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
    """Ends a session 12 hours (SESSION_ABSOLUTE_LIMIT) after sign-in, however active, and
    after SESSION_IDLE_LIMIT without a request.

    The idle limit is checked here from the session's own last-seen time, not left to the
    cookie's age or the session store's expiry alone (a cache keeps entries by its own clock).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated:
            now = timezone.now()
            started = request.session.get(LOGIN_AT_KEY)
            last_seen = request.session.get(LAST_SEEN_KEY)
            if started is None:
                request.session[LOGIN_AT_KEY] = now.isoformat()
            elif now - datetime.fromisoformat(started) >= settings.SESSION_ABSOLUTE_LIMIT:
                return self._end(request, user, "absolute")
            if last_seen is not None and now - datetime.fromisoformat(last_seen) >= settings.SESSION_IDLE_LIMIT:
                return self._end(request, user, "idle")
            if last_seen is None or now - datetime.fromisoformat(last_seen) >= LAST_SEEN_RESOLUTION:
                # At most one session write a minute: a page polling every second costs no write.
                request.session[LAST_SEEN_KEY] = now.isoformat()
        return self.get_response(request)

    def _end(self, request, user, limit: str):
        security_event_record(
            event_type=EventType.AUTH_SESSION_EXPIRED,
            actor=user,
            target=user,
            request=request,
            details={"limit": limit},
        )
        logout(request)
        return redirect(f"{reverse('account_login')}?next={request.path}")


class RequireStaffMFAMiddleware:
    """Every staff user must have an authenticator before any page (admin included) opens.

    The answer is kept in the session for MFA_CHECK_SECONDS, so a page that polls every
    second does not ask the database each time; removing the last authenticator is
    noticed within that time (and allauth asks for re-authentication to remove one).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not request.path.startswith(_ENROLMENT_PREFIXES) and not _has_mfa(request):
            return redirect("mfa_activate_totp")
        return self.get_response(request)


MFA_CHECK_KEY = "portal_mfa_checked"
MFA_CHECK_SECONDS = 60


def _has_mfa(request) -> bool:
    now = timezone.now().timestamp()
    checked = request.session.get(MFA_CHECK_KEY)
    if isinstance(checked, float) and 0 <= now - checked < MFA_CHECK_SECONDS:
        return True
    if not is_mfa_enabled(request.user):
        request.session.pop(MFA_CHECK_KEY, None)
        return False
    request.session[MFA_CHECK_KEY] = now
    return True


class OrganizationScopeMiddleware:
    """Every scoped read in one request shares one read of the user's organisations
    (``accounts.selectors.organization_ids_for_user``); the next request reads them again,
    so an assignment removed is in force from the next request on."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with organization_scope_memo():
            return self.get_response(request)
