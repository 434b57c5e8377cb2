"""Record allauth's sign-in and MFA signals as security events, and rotate the session
key once an authenticator is added (the session is then worth more than before)."""

from __future__ import annotations

from allauth.account.signals import password_changed, password_reset
from allauth.mfa.signals import authentication_failed, authenticator_added, authenticator_removed, authenticator_reset
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.utils import timezone

from accounts.middleware import LOGIN_AT_KEY
from accounts.models import User
from audit.events import EventType
from audit.recorder import security_event_record


@receiver(user_logged_in)
def _on_login(sender, request, user, **kwargs):
    # Django's signal: allauth's login (after the MFA stage) goes through django.contrib.auth.login.
    request.session[LOGIN_AT_KEY] = timezone.now().isoformat()
    security_event_record(event_type=EventType.AUTH_LOGIN_SUCCEEDED, actor=user, target=user, request=request)


@receiver(user_login_failed)
def _on_login_failed(sender, credentials, request=None, **kwargs):
    email = str(credentials.get("email") or credentials.get("username") or "")[:254]
    user = User.objects.filter(email__iexact=email).first() if email else None
    security_event_record(
        event_type=EventType.AUTH_LOGIN_FAILED,
        target=user,
        details={"known_account": user is not None},
        request=request,
    )


@receiver(user_logged_out)
def _on_logout(sender, request, user, **kwargs):
    if user is not None:
        security_event_record(event_type=EventType.AUTH_LOGOUT, actor=user, target=user, request=request)


@receiver(authenticator_added)
def _on_authenticator_added(sender, request, user, authenticator, **kwargs):
    security_event_record(
        event_type=EventType.AUTH_MFA_ENROLLED,
        actor=user,
        target=user,
        details={"type": authenticator.type},
        request=request,
    )
    if request is not None and hasattr(request, "session"):
        request.session.cycle_key()


@receiver(authenticator_removed)
def _on_authenticator_removed(sender, request, user, authenticator, **kwargs):
    security_event_record(
        event_type=EventType.AUTH_MFA_REMOVED,
        actor=user,
        target=user,
        details={"type": authenticator.type},
        request=request,
    )


@receiver(authenticator_reset)
def _on_authenticator_reset(sender, request, user, authenticator, **kwargs):
    security_event_record(
        event_type=EventType.AUTH_MFA_RESET,
        actor=user,
        target=user,
        details={"type": authenticator.type},
        request=request,
    )


@receiver(authentication_failed)
def _on_mfa_failed(sender, request, user, **kwargs):
    security_event_record(event_type=EventType.AUTH_MFA_FAILED, target=user, request=request)


@receiver(password_changed)
def _on_password_changed(sender, request, user, **kwargs):
    security_event_record(event_type=EventType.AUTH_PASSWORD_CHANGED, actor=user, target=user, request=request)


@receiver(password_reset)
def _on_password_reset(sender, request, user, **kwargs):
    security_event_record(event_type=EventType.AUTH_PASSWORD_RESET, actor=user, target=user, request=request)
