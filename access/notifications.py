"""Access emails: approvers on a new request, the technician on the decision and 10 minutes
before expiry, every org admin on break-glass use. Bodies are templates under
``templates/access/email/`` (``<name>_subject.txt`` and ``<name>.txt``).

Links point at the portal pages by URL name when they exist (``access:request_detail``,
``access:grant_detail``, ``access:my_grants``), else at the portal's home.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from access.models import AccessRequest, Grant
from access.selectors import approver_list_for, grant_history_for, org_admin_list_for
from accounts.models import User


def _base_url() -> str:
    return str(settings.PUBLIC_BASE_URL or "").rstrip("/")


def portal_link(view_name: str, *args) -> str:
    base = _base_url()
    try:
        return base + reverse(view_name, args=args)
    except NoReverseMatch:
        return base + "/"


def _send(template: str, recipients: Iterable[User], context: dict) -> int:
    """One message per recipient (nobody sees the others' addresses), over one connection."""
    context = {**context, "portal_url": _base_url()}
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(
        render_to_string(f"access/email/{template}_subject.txt", context).split()
    )
    body = render_to_string(f"access/email/{template}.txt", context)
    messages = [EmailMessage(subject, body, to=[user.email]) for user in recipients if user.email]
    if not messages:
        return 0
    return get_connection().send_messages(messages) or 0


def request_submitted_send(*, access_request_id: int) -> int:
    """To each approver of a pending request, with the justification, ticket and the
    technician's recent grants. Nothing once the request is no longer pending."""
    access_request = (
        AccessRequest.objects.select_related("role", "organization", "technician").filter(pk=access_request_id).first()
    )
    if access_request is None or access_request.status != AccessRequest.Status.PENDING:
        return 0
    context = {
        "access_request": access_request,
        "history": grant_history_for(technician=access_request.technician, limit=5),
        "link": portal_link("access:request_detail", access_request.pk),
    }
    return _send("request_submitted", approver_list_for(access_request=access_request), context)


def request_decided_send(*, access_request_id: int) -> int:
    """To the technician when their request is approved or denied."""
    access_request = (
        AccessRequest.objects.select_related("role", "organization", "technician").filter(pk=access_request_id).first()
    )
    decided = (AccessRequest.Status.APPROVED, AccessRequest.Status.DENIED)
    if access_request is None or access_request.status not in decided:
        return 0
    context = {
        "access_request": access_request,
        "approved": access_request.status == AccessRequest.Status.APPROVED,
        "denials": access_request.approvals.filter(decision="deny").select_related("approver"),
        "link": portal_link("access:request_detail", access_request.pk),
    }
    return _send("request_decided", [access_request.technician], context)


def grant_expiring_send(*, grant: Grant, now: datetime) -> int:
    """To the technician, 10 minutes before the grant expires (called by the service that marks it sent)."""
    context = {
        "grant": grant,
        "minutes_left": max(int((grant.expires_at - now).total_seconds() // 60), 0),
        "link": portal_link("access:my_grants"),
    }
    return _send("grant_expiring", [grant.technician], context)


def break_glass_alert_send(*, grant_id: int) -> int:
    """To every org admin of the organisation at once: who, which role, why, until when."""
    grant = Grant.objects.select_related("role", "organization", "technician", "request").filter(pk=grant_id).first()
    if grant is None or not grant.break_glass:
        return 0
    context = {"grant": grant, "now": timezone.now(), "link": portal_link("access:grant_detail", grant.pk)}
    return _send("break_glass_alert", org_admin_list_for(organization=grant.organization), context)
