"""Celery tasks of Just-In-Time access: load by id, call one service (which re-checks that
the work is due), own the retry policy. Services enqueue them with ``transaction.on_commit``.

Expiry, start and notice tasks are scheduled for their exact time (``eta``); one that
arrives early (clock skew) schedules itself again for the right time. Nothing here is the
control: authorization reads the grant rows with the database's clock, so a stopped worker
only delays the mirror cleanup and the emails, which the beat sweep then catches up.
"""

from __future__ import annotations

from datetime import datetime
from smtplib import SMTPException

from celery import shared_task
from django.utils import timezone

from access import notifications, params, services
from access.models import Grant
from access.services import Outcome, hygiene, reviews
from accounts.tasks import MAIL_RETRIES, mail_with_retry


def _again(task, grant_id: int, field: str) -> None:
    """Re-schedule an early task for the grant's ``field`` time (not when run eagerly in tests:
    there the sweep is called explicitly)."""
    if task.request.is_eager:
        return
    when = Grant.objects.filter(pk=grant_id).values_list(field, flat=True).first()
    if when is not None:
        task.apply_async(args=(grant_id,), eta=when)


@shared_task(bind=True, acks_late=True)
def grant_expire(self, grant_id: int) -> str:
    outcome = services.grant_expire(grant_id=grant_id)
    if outcome == Outcome.NOT_DUE:
        _again(self, grant_id, "expires_at")
    return outcome


@shared_task(bind=True, acks_late=True)
def grant_start(self, grant_id: int) -> str:
    outcome = services.grant_mirror_apply(grant_id=grant_id)
    if outcome == Outcome.NOT_DUE:
        _again(self, grant_id, "starts_at")
    return outcome


@shared_task(bind=True, acks_late=True, max_retries=MAIL_RETRIES)
def grant_expiry_notice(self, grant_id: int) -> str:
    try:
        outcome = services.grant_expiry_notice_send(grant_id=grant_id)
    except (SMTPException, OSError) as exc:
        raise self.retry(countdown=2 ** (self.request.retries + 1)) from exc
    if outcome == Outcome.NOT_DUE and not self.request.is_eager:
        expires_at = Grant.objects.filter(pk=grant_id).values_list("expires_at", flat=True).first()
        if expires_at is not None:
            self.apply_async(args=(grant_id,), eta=expires_at - params.EXPIRY_NOTICE)
    return outcome


@shared_task(bind=True, acks_late=True, max_retries=MAIL_RETRIES)
def access_request_notify_approvers(self, access_request_id: int) -> int:
    return mail_with_retry(self, notifications.request_submitted_send, access_request_id=access_request_id)


@shared_task(bind=True, acks_late=True, max_retries=MAIL_RETRIES)
def access_request_notify_decision(self, access_request_id: int) -> int:
    return mail_with_retry(self, notifications.request_decided_send, access_request_id=access_request_id)


@shared_task(bind=True, acks_late=True, max_retries=MAIL_RETRIES)
def break_glass_alert(self, grant_id: int) -> int:
    return mail_with_retry(self, notifications.break_glass_alert_send, grant_id=grant_id)


@shared_task
def access_sweep() -> dict[str, int]:
    return services.access_sweep()


@shared_task(bind=True, acks_late=True, max_retries=MAIL_RETRIES)
def contact_change_notify(self, action_id: int, side: str) -> bool:
    """Tell the old or the new contact of a contact change (gated helpdesk actions)."""
    from access.services.action_contacts import SendError, contact_change_notice_failed, contact_change_notice_send

    try:
        return contact_change_notice_send(action_id=action_id, side=side)
    except SendError as exc:
        if exc.permanent or self.request.retries >= MAIL_RETRIES:
            contact_change_notice_failed(action_id=action_id, side=side, reason=exc.reason)
            return False
        raise self.retry(countdown=2 ** (self.request.retries + 1)) from None
    except (SMTPException, OSError) as exc:
        if self.request.retries >= MAIL_RETRIES:
            contact_change_notice_failed(action_id=action_id, side=side, reason=type(exc).__name__)
            return False
        raise self.retry(countdown=2 ** (self.request.retries + 1)) from exc


# --- Access hygiene (beat): end-dated eligibilities, review campaigns, the daily digest ------


@shared_task
def eligibility_expire_due() -> int:
    return hygiene.eligibility_expire_due()


@shared_task
def review_campaigns_close_due() -> int:
    return reviews.review_campaigns_close_due()


@shared_task
def review_campaigns_start_due() -> int:
    return reviews.review_campaigns_start_due()


@shared_task
def access_digest() -> int:
    """Beat (daily): one digest task per active organisation, all for the same 24 hours."""
    until = timezone.now()
    organization_ids = hygiene.access_digest_organizations()
    for organization_id in organization_ids:
        access_digest_send.delay(organization_id, until.isoformat())
    return len(organization_ids)


@shared_task(bind=True, acks_late=True, max_retries=MAIL_RETRIES)
def access_digest_send(self, organization_id: int, until: str) -> int:
    return mail_with_retry(
        self, hygiene.access_digest_send, organization_id=organization_id, until=datetime.fromisoformat(until)
    )
