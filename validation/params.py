"""Security parameters of caller verification (DESIGN.md), read from settings with hard caps."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

CODE_DIGITS = 6
CODE_DIGITS_PRIVILEGED = 8
RESULT_LIFETIME = timedelta(minutes=15)  # a verified request covers one action this long


def code_lifetime() -> timedelta:
    return timedelta(seconds=min(settings.VERIFICATION_CODE_TTL_SECONDS, 600))


def push_lifetime() -> timedelta:
    return timedelta(seconds=min(settings.VERIFICATION_PUSH_TTL_SECONDS, 120))


def request_lifetime() -> timedelta:
    return timedelta(minutes=settings.VERIFICATION_REQUEST_TTL_MINUTES)


def max_attempts() -> int:
    return min(settings.VERIFICATION_MAX_ATTEMPTS, 5)


def failure_cap() -> int:
    return min(settings.VERIFICATION_FAILURE_CAP, 20)


def contact_cooldown() -> timedelta:
    return timedelta(days=max(settings.VERIFICATION_CONTACT_COOLDOWN_DAYS, 7))


def enrollment_lifetime() -> timedelta:
    return timedelta(minutes=min(settings.VERIFICATION_ENROLLMENT_TTL_MINUTES, 60))
