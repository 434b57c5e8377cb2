"""Security parameters of Just-In-Time access (DESIGN.md), read from settings with hard caps."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from validation.models import Action

MAX_DURATION = timedelta(hours=8)  # no role, request or grant is ever longer
DEFAULT_DURATION = timedelta(hours=1)
BREAK_GLASS_HARD_CAP = timedelta(minutes=60)
EXPIRY_NOTICE = timedelta(minutes=10)  # the technician is emailed this long before expiry
SWEEP_BATCH = 500  # rows of one kind handled per sweep run; the next run takes the rest

# The helpdesk actions a role can carry (Action.OTHER is never privileged work).
GRANTABLE_ACTIONS = (Action.PASSWORD_RESET, Action.MFA_RESET, Action.ACCOUNT_UNLOCK, Action.CONTACT_CHANGE)


def review_lifetime() -> timedelta:
    return timedelta(hours=settings.ACCESS_REQUEST_REVIEW_HOURS)


def activation_window() -> timedelta:
    return timedelta(hours=settings.ACCESS_ACTIVATION_WINDOW_HOURS)


def break_glass_cap() -> timedelta:
    return min(timedelta(minutes=settings.ACCESS_BREAK_GLASS_MAX_MINUTES), BREAK_GLASS_HARD_CAP)


def reauth_max_age() -> timedelta:
    return timedelta(seconds=min(settings.ACCESS_REAUTH_MAX_AGE_SECONDS, 900))
