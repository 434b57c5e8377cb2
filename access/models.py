"""Just-In-Time access: the roles technicians may hold, who is eligible for them, requests
with their approvals, and time-boxed grants.

Rows change only through ``access.services``; each change records its security event in
the same transaction. Whether a grant allows anything is decided by
``access.authorization.grant_allows`` from the Grant rows alone, with the database's clock;
the django-guardian object permissions (``access.mirror``) only mirror grants in force.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from access import params
from accounts.models import Organization

# Object permissions on an Organization that a role may carry beyond its actions. The
# organisation assignment (accounts' work_on_organization) is never the mirror's to touch.
MIRRORABLE_PERMISSIONS = Q(content_type__app_label="accounts", content_type__model="organization") & ~Q(
    codename="work_on_organization"
)


class Role(models.Model):
    """What a grant lets a technician do in one organisation, and how it is obtained.

    ``actions`` lists ``validation.models.Action`` values (password reset, MFA reset,
    account unlock, contact change). ``permissions`` are extra Django object permissions
    on the organisation, mirrored for listings and the admin while a grant is in force.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    actions = models.JSONField(default=list, blank=True, help_text="Helpdesk actions a grant of this role allows.")
    permissions = models.ManyToManyField(
        Permission,
        blank=True,
        related_name="+",
        limit_choices_to=MIRRORABLE_PERMISSIONS,
        help_text="Object permissions on the organisation held while a grant is in force (a mirror, never the check).",
    )
    covers_privileged = models.BooleanField(
        default=False, help_text="Its actions may target privileged people (admins) too."
    )
    max_duration = models.DurationField(default=params.DEFAULT_DURATION, help_text="Longest grant; hard cap 8 hours.")
    approvals_required = models.PositiveSmallIntegerField(
        default=1, help_text="Approvals (N) from members of the approver group before the grant can be activated."
    )
    approver_group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Staff who may approve; they must also work on the request's organisation.",
    )
    requires_mfa_reauth = models.BooleanField(
        default=True, help_text="Activation needs a fresh MFA step in the technician's session."
    )
    break_glass = models.BooleanField(
        default=False,
        help_text="Activates without approval for a short time, alerts every org admin and must be reviewed.",
    )
    active = models.BooleanField(default=True, help_text="Inactive roles take no new requests or activations.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_duration__gt=timedelta(0), max_duration__lte=params.MAX_DURATION),
                name="role_duration_within_cap",
            ),
            models.CheckConstraint(condition=Q(approvals_required__gte=1), name="role_needs_an_approval"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        unknown = [a for a in self.actions or [] if a not in params.GRANTABLE_ACTIONS]
        if not isinstance(self.actions, list) or unknown:
            errors["actions"] = f"Choose among {', '.join(params.GRANTABLE_ACTIONS)}."
        if self.max_duration is not None:
            cap = params.break_glass_cap() if self.break_glass else params.MAX_DURATION
            if not timedelta(0) < self.max_duration <= cap:
                errors["max_duration"] = f"More than nothing and at most {human_duration(cap)}."
        if not self.break_glass and self.approver_group_id is None:
            errors["approver_group"] = "A role that needs approval needs an approver group."
        if errors:
            raise ValidationError(errors)

    @property
    def effective_max_duration(self) -> timedelta:
        """The longest grant this role allows now (a break-glass role is also cut to the setting)."""
        cap = params.break_glass_cap() if self.break_glass else params.MAX_DURATION
        return min(self.max_duration, cap)

    def allows(self, action: str, *, privileged: bool = False) -> bool:
        return action in (self.actions or []) and (self.covers_privileged or not privileged)


class Eligibility(models.Model):
    """A technician may request ``role`` for ``organization`` (until ``valid_until``, if set).
    Managed by the organisation's admins; ending it cancels open requests and revokes grants."""

    technician = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_eligibilities"
    )
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="eligibilities")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="access_eligibilities")
    valid_until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["organization", "technician", "role"]
        verbose_name_plural = "eligibilities"
        constraints = [
            models.UniqueConstraint(
                fields=["technician", "role", "organization"],
                condition=Q(ended_at__isnull=True),
                name="eligibility_one_current",
            ),
        ]
        indexes = [models.Index(fields=["organization", "technician"])]

    def __str__(self) -> str:
        return f"{self.technician} may request {self.role} for {self.organization}"

    def is_current(self, at: datetime) -> bool:
        return self.ended_at is None and (self.valid_until is None or self.valid_until > at)


class AccessRequest(models.Model):
    """A technician asks for ``role`` in ``organization`` for ``requested_duration``."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved, not activated"
        DENIED = "denied", "Denied"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED_UNREVIEWED = "expired_unreviewed", "Expired unreviewed"
        LAPSED = "lapsed", "Approved but not activated in time"
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"
        REVOKED = "revoked", "Revoked"

    OPEN_STATUSES = (Status.PENDING, Status.APPROVED)

    technician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_requests")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="requests")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="access_requests")
    justification = models.TextField()
    ticket_reference = models.CharField(max_length=64)
    requested_duration = models.DurationField()
    scheduled_start = models.DateTimeField(null=True, blank=True)
    # Extensions are new requests; this only links one to the grant it follows.
    extends = models.ForeignKey(
        "Grant", null=True, blank=True, on_delete=models.SET_NULL, related_name="extension_requests"
    )
    break_glass = models.BooleanField(default=False)
    approvals_required = models.PositiveSmallIntegerField(default=1, help_text="The role's N when requested.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    review_expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    activate_by = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["technician", "role", "organization"],
                condition=Q(status__in=["pending", "approved"]),
                name="access_request_one_open",
            ),
            models.CheckConstraint(
                condition=Q(requested_duration__gt=timedelta(0), requested_duration__lte=params.MAX_DURATION),
                name="access_request_duration_within_cap",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "review_expires_at"]),
            models.Index(fields=["status", "activate_by"]),
            models.Index(fields=["organization", "status", "-created_at"]),
            models.Index(fields=["technician", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.role} for {self.technician} in {self.organization} ({self.ticket_reference})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def duration_display(self) -> str:
        return human_duration(self.requested_duration)


class Approval(models.Model):
    """One approver's decision on one request. The requester can never be the approver:
    the services refuse it, and so does the database (``approval_not_by_requester``)."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        DENY = "deny", "Deny"

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_approvals")
    # The request's technician, copied so the database itself can refuse self-approval.
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "approver"], name="approval_once_per_approver"),
            models.CheckConstraint(condition=~Q(approver=models.F("requester")), name="approval_not_by_requester"),
        ]

    def __str__(self) -> str:
        return f"{self.approver}: {self.get_decision_display()}"


class Grant(models.Model):
    """An activated request: ``technician`` holds ``role`` in ``organization`` from
    ``starts_at`` until ``expires_at``, unless ``revoked_at`` is set (revoked or released).

    The window never changes once written (``save`` refuses) and a revocation is never
    undone: an extension is a new request and a new grant.
    """

    request = models.OneToOneField(AccessRequest, on_delete=models.PROTECT, related_name="grant")
    # Both foreign keys lead composite indexes below, which serve their lookups too.
    technician = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_grants", db_index=False
    )
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="grants")
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="access_grants", db_index=False
    )
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    mfa_reauthenticated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True, help_text="Why it was revoked or released.")
    # The django-guardian mirror: when it was applied and cleaned, and how late the cleaning
    # was after the grant ended (expires_at, or revoked_at when revoked or released).
    mirror_applied_at = models.DateTimeField(null=True, blank=True)
    mirror_cleaned_at = models.DateTimeField(null=True, blank=True)
    cleanup_lag = models.DurationField(null=True, blank=True)
    expiry_notice_sent_at = models.DateTimeField(null=True, blank=True)
    break_glass = models.BooleanField(default=False)
    review_required = models.BooleanField(default=False)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("starts_at")), name="grant_window_not_empty"),
        ]
        indexes = [
            # The authorization check: one technician, one organisation, not revoked, by expiry.
            models.Index(
                fields=["technician", "organization", "expires_at"],
                condition=Q(revoked_at__isnull=True),
                name="grant_authorization",
            ),
            # The sweep: grants whose mirror is still to be cleaned, by expiry.
            models.Index(fields=["expires_at"], condition=Q(mirror_cleaned_at__isnull=True), name="grant_to_clean"),
            models.Index(fields=["starts_at"], condition=Q(mirror_applied_at__isnull=True), name="grant_to_apply"),
            models.Index(fields=["organization", "-starts_at"]),
            models.Index(fields=["technician", "-starts_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.role} for {self.technician} in {self.organization}"

    def save(self, *args, **kwargs):
        if self.pk is not None and hasattr(self, "_stored_window"):
            stored_start, stored_end = self._stored_window
            if (stored_start, stored_end) != (self.starts_at, self.expires_at) and stored_end is not None:
                raise ValueError("A grant's window never changes: an extension is a new request.")
            if self._stored_revoked_at is not None and self.revoked_at != self._stored_revoked_at:
                raise ValueError("A revoked grant stays revoked.")
        super().save(*args, **kwargs)
        self._stored_window = (self.starts_at, self.expires_at)
        self._stored_revoked_at = self.revoked_at

    @classmethod
    def from_db(cls, db, field_names, values):
        grant = super().from_db(db, field_names, values)
        grant._stored_window = (grant.__dict__.get("starts_at"), grant.__dict__.get("expires_at"))
        grant._stored_revoked_at = grant.__dict__.get("revoked_at")
        return grant

    @property
    def ended_at(self) -> datetime:
        """When the grant stopped allowing anything (or will): revocation or expiry."""
        return min(self.revoked_at, self.expires_at) if self.revoked_at else self.expires_at

    def in_force_at(self, at: datetime) -> bool:
        """For displays (countdowns, listings). Decisions use ``access.authorization``."""
        return self.revoked_at is None and self.starts_at <= at < self.expires_at

    @property
    def review_pending(self) -> bool:
        return self.review_required and self.reviewed_at is None


def human_duration(duration: timedelta) -> str:
    """ "1 h", "90 minutes", "45 seconds": for messages and emails."""
    total = int(duration.total_seconds())
    if total % 3600 == 0 and total:
        return f"{total // 3600} h"
    if total % 60 == 0 and total:
        return f"{total // 60} minutes"
    return f"{total} seconds"


# Gated helpdesk actions, directory connectors and access review campaigns live in their own
# modules; imported here so Django finds them.
from access.action_models import DirectoryConnectorConfig, HelpdeskAction  # noqa: E402, F401
from access.review_models import ReviewCampaign, ReviewItem  # noqa: E402, F401
