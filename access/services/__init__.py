"""Every change to Just-In-Time access goes through these functions (see DESIGN.md).

Each takes keyword arguments only, the acting staff user as ``actor`` (``None`` for the
system: tasks and the sweep), runs in one transaction and records its security event in
that transaction. Refusals raise AccessError (``message`` is safe to show);
SelfApprovalError and ReauthenticationRequired are kinds of it that views handle apart.
Emails and Celery tasks are queued with ``transaction.on_commit``.
"""

from access.services._common import AccessError, ReauthenticationRequired, SelfApprovalError
from access.services.break_glass import break_glass_activate, break_glass_review
from access.services.eligibility import eligibility_create, eligibility_end
from access.services.grants import (
    Outcome,
    grant_activate,
    grant_expire,
    grant_expiry_notice_send,
    grant_mirror_apply,
    grant_release,
    grant_revoke,
)
from access.services.requests import (
    access_request_approve,
    access_request_cancel,
    access_request_create,
    access_request_deny,
    access_request_expire_stale,
)
from access.services.roles import role_create, role_update
from access.services.sweep import access_sweep

__all__ = [
    "AccessError",
    "Outcome",
    "ReauthenticationRequired",
    "SelfApprovalError",
    "access_request_approve",
    "access_request_cancel",
    "access_request_create",
    "access_request_deny",
    "access_request_expire_stale",
    "access_sweep",
    "break_glass_activate",
    "break_glass_review",
    "eligibility_create",
    "eligibility_end",
    "grant_activate",
    "grant_expire",
    "grant_expiry_notice_send",
    "grant_mirror_apply",
    "grant_release",
    "grant_revoke",
    "role_create",
    "role_update",
]
