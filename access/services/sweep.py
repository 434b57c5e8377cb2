"""The beat sweep: whatever the exact-time tasks missed (worker down, task lost), caught up
every 30 seconds. Each grant or request is handled in its own transaction."""

from __future__ import annotations

from django.db.models import F
from django.utils import timezone

from access import params
from access.models import Grant
from access.services.grants import Outcome, grant_expire, grant_expiry_notice_send, grant_mirror_apply
from access.services.requests import access_request_expire_stale


def access_sweep() -> dict[str, int]:
    """Expire grants past ``expires_at`` whose mirror is not cleaned, mirror scheduled grants
    that started, send due expiry notices, expire unreviewed requests and lapse unused
    approvals. Returns counts of what it did."""
    now = timezone.now()
    to_clean = Grant.objects.filter(mirror_cleaned_at__isnull=True, expires_at__lte=now).order_by("expires_at")
    expired = sum(
        grant_expire(grant_id=pk) == Outcome.DONE for pk in to_clean.values_list("pk", flat=True)[: params.SWEEP_BATCH]
    )
    to_apply = Grant.objects.filter(
        mirror_applied_at__isnull=True, mirror_cleaned_at__isnull=True, revoked_at__isnull=True, starts_at__lte=now
    ).order_by("starts_at")
    started = sum(
        grant_mirror_apply(grant_id=pk) == Outcome.DONE
        for pk in to_apply.values_list("pk", flat=True)[: params.SWEEP_BATCH]
    )
    to_notify = (
        Grant.objects.filter(
            expiry_notice_sent_at__isnull=True,
            revoked_at__isnull=True,
            starts_at__lte=now,
            expires_at__gt=now,
            expires_at__lte=now + params.EXPIRY_NOTICE,
        )
        .filter(expires_at__gt=F("starts_at") + params.EXPIRY_NOTICE)  # shorter grants get no notice
        .order_by("expires_at")
    )
    notified = sum(
        grant_expiry_notice_send(grant_id=pk) == Outcome.DONE
        for pk in to_notify.values_list("pk", flat=True)[: params.SWEEP_BATCH]
    )
    requests = access_request_expire_stale(now=now)
    return {"grants_expired": expired, "grants_started": started, "notices_sent": notified, "requests_closed": requests}
