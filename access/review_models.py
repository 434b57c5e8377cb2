"""Access review campaigns: every current eligibility of an organisation is re-certified or
removed by a reviewer who is not the eligible technician, before a deadline; at the deadline
what was not re-certified ends (``access.services.reviews``).

Imported at the end of ``access.models``; foreign keys name the other access models by
string so this module imports none of them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ReviewCampaign(models.Model):
    """One review of one organisation's eligibilities, started by beat (``started_by`` empty)
    or by an org admin. At most one open campaign per organisation."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    deadline = models.DateTimeField(help_text="Items not re-certified by then end.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization"], condition=Q(status="open"), name="review_one_open"),
            models.CheckConstraint(condition=Q(deadline__gt=models.F("started_at")), name="review_deadline_later"),
        ]
        indexes = [
            models.Index(fields=["deadline"], condition=Q(status="open"), name="review_open_by_deadline"),
            models.Index(fields=["organization", "-started_at"]),
        ]

    def __str__(self) -> str:
        return f"Access review of {self.organization} started {self.started_at:%Y-%m-%d}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class ReviewItem(models.Model):
    """One eligibility in a campaign and the decision on it. The reviewer is never the
    eligible technician: the services refuse it and so does the database
    (``review_not_by_technician``)."""

    class Decision(models.TextChoices):
        PENDING = "pending", "Pending"
        RECERTIFIED = "recertified", "Re-certified"
        REMOVED = "removed", "Removed"
        LAPSED = "lapsed", "Not re-certified by the deadline"
        ENDED = "ended", "Ended outside the review"

    campaign = models.ForeignKey(ReviewCampaign, on_delete=models.CASCADE, related_name="items")
    eligibility = models.ForeignKey("access.Eligibility", on_delete=models.PROTECT, related_name="review_items")
    # The eligibility's technician, copied so the database itself can refuse self-review.
    technician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=12, choices=Decision.choices, default=Decision.PENDING)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "eligibility"], name="review_item_once"),
            models.CheckConstraint(
                condition=Q(reviewer__isnull=True) | ~Q(reviewer=models.F("technician")),
                name="review_not_by_technician",
            ),
        ]
        indexes = [models.Index(fields=["campaign", "decision"])]

    def __str__(self) -> str:
        return f"{self.eligibility} ({self.get_decision_display()})"

    @property
    def is_pending(self) -> bool:
        return self.decision == self.Decision.PENDING
