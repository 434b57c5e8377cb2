"""Emails to staff about their own account: locked after inactivity, unlocked again.
Bodies are templates under ``templates/accounts/email/`` (``<name>_subject.txt``, ``<name>.txt``)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string

from accounts import selectors
from accounts.models import User


def _send(template: str, user: User, context: dict) -> int:
    if not user.email:
        return 0
    context = {**context, "user": user, "portal_url": str(settings.PUBLIC_BASE_URL or "").rstrip("/")}
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(
        render_to_string(f"accounts/email/{template}_subject.txt", context).split()
    )
    body = render_to_string(f"accounts/email/{template}.txt", context)
    return EmailMessage(subject, body, to=[user.email]).send()


def staff_locked_send(*, user_id: int) -> int:
    """To the locked user: why, since when, and which org admins can unlock them. Nothing
    once the account has been unlocked again."""
    user = User.objects.filter(pk=user_id, locked_at__isnull=False).first()
    if user is None:
        return 0
    context = {
        "days": settings.STAFF_INACTIVE_LOCK_DAYS,
        "org_admins": list(selectors.org_admins_of_staff(user=user)[:10]),
    }
    return _send("staff_locked", user, context)


def staff_unlocked_send(*, user_id: int) -> int:
    """To the user once an org admin unlocked them, so an unlock they did not ask for is noticed."""
    user = User.objects.filter(pk=user_id, locked_at__isnull=True, unlocked_at__isnull=False).first()
    if user is None:
        return 0
    return _send("staff_unlocked", user, {"days": settings.STAFF_INACTIVE_LOCK_DAYS})
