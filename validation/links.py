"""One-time links for end users: a random nonce, signed with a timestamp.

The signature rejects tampered and expired links before the database is touched; the
nonce's hash on the row makes the link single use (the row's state changes when it is
used). The link carries nothing else: no ids, no names.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

PUSH = "validation.push"
ENROLLMENT = "validation.enrollment"
FRAUD_REPORT = "validation.fraud_report"  # "I didn't request this" in a verification email
APPROVAL = "validation.approval"


class BadLink(Exception):
    """The link is tampered, malformed or expired. ``reason`` is safe to show."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def link_token(nonce: str, *, purpose: str) -> str:
    return signing.TimestampSigner(salt=purpose).sign(nonce)


def link_url(view_name: str, nonce: str, *, purpose: str) -> str:
    path = reverse(view_name, kwargs={"token": link_token(nonce, purpose=purpose)})
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def link_nonce(token: str, *, purpose: str, max_age: timedelta) -> str:
    """The nonce inside a valid token. Raises BadLink."""
    if len(token) > 200:
        raise BadLink("This link is not valid.")
    try:
        return signing.TimestampSigner(salt=purpose).unsign(token, max_age=max_age)
    except signing.SignatureExpired:
        raise BadLink("This link has expired.") from None
    except signing.BadSignature:
        raise BadLink("This link is not valid.") from None


def link_signed_here(token: str, *, purpose: str) -> bool:
    """Whether the portal signed ``token`` for ``purpose``, however long ago. Tells a link
    that was used or has expired (genuine, gone) from a forged or mangled one."""
    if len(token) > 200:
        return False
    try:
        signing.TimestampSigner(salt=purpose).unsign(token)
    except signing.BadSignature:
        return False
    return True
