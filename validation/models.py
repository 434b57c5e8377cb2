"""Caller verification: requests, the challenges that serve them, per-organisation
policies, end users' authenticators and the per-person failure state.

Rows change only through ``validation.services``; each change records its security
event in the same transaction.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Organization, Person


class Action(models.TextChoices):
    """What the caller asks the helpdesk to do."""

    PASSWORD_RESET = "password_reset", "Password reset"
    MFA_RESET = "mfa_reset", "MFA reset"
    ACCOUNT_UNLOCK = "account_unlock", "Account unlock"
    CONTACT_CHANGE = "contact_change", "Contact change"
    OTHER = "other", "Other"


class Method(models.TextChoices):
    """How the real employee is challenged. Each value has one channel class."""

    SMS_CODE = "sms_code", "SMS code"
    PUSH = "push", "Number-matched approval link"
    TOTP = "totp", "Authenticator app code"
    SMS_REPLY = "sms_reply", "SMS reply (YES + number)"
    EMAIL_CODE = "email_code", "Email code"
    MANAGER_APPROVAL = "manager_approval", "Manager approval"
    PEER_APPROVAL = "peer_approval", "Peer approval"


APPROVAL_METHODS = (Method.MANAGER_APPROVAL, Method.PEER_APPROVAL)


class ApprovalRequired(models.TextChoices):
    """When a policy needs a manager or peer approval (``validation.policy``)."""

    NEVER = "never", "Never"
    PRIVILEGED = "privileged", "For privileged people"
    ALWAYS = "always", "Always"


class VerificationPolicy(models.Model):
    """What one organisation requires before one action; see ``validation.policy``."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="verification_policies")
    action = models.CharField(max_length=20, choices=Action.choices)
    allowed_methods = models.JSONField(default=list, help_text="Methods that may count toward this policy.")
    min_methods = models.PositiveSmallIntegerField(default=1, help_text="Independent methods needed.")
    min_strong_methods = models.PositiveSmallIntegerField(
        default=1, help_text="How many of them must be strong (not SMS code, not email)."
    )
    required_methods = models.JSONField(default=list, blank=True, help_text="Methods that must be among them.")
    privileged_extra_methods = models.PositiveSmallIntegerField(
        default=1, help_text="Further methods needed when the person is privileged."
    )
    approval_required = models.CharField(
        max_length=10,
        choices=ApprovalRequired.choices,
        default=ApprovalRequired.NEVER,
        help_text="When a manager or peer approval must be among the methods.",
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["organization", "action"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "action"], name="policy_unique_action"),
        ]
        verbose_name_plural = "verification policies"

    def __str__(self) -> str:
        return f"{self.organization}: {self.get_action_display()}"


class VerificationRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        VERIFIED = "verified", "Verified"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"
        LOCKED = "locked", "Locked"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="verification_requests")
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="verification_requests")
    technician = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="verification_requests"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    ticket_reference = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    # Pending: when the request gives up. Verified: when the result stops covering the action.
    expires_at = models.DateTimeField()
    verified_at = models.DateTimeField(null=True, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=200, blank=True)
    policy_snapshot = models.JSONField(default=dict)
    # Bumped on every change to the request or its challenges; the live view polls it.
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["person", "action", "status"]),
            models.Index(fields=["status", "expires_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} for {self.person} ({self.ticket_reference})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.PENDING


class Challenge(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        UNDELIVERED = "undelivered", "Undelivered"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    OPEN_STATUSES = (Status.QUEUED, Status.SENT, Status.DELIVERED, Status.UNDELIVERED)
    # On its way or arrived: another of the same method would only confuse the person.
    WAITING_STATUSES = (Status.QUEUED, Status.SENT, Status.DELIVERED)
    ANSWERABLE_STATUSES = (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)

    request = models.ForeignKey(VerificationRequest, on_delete=models.CASCADE, related_name="challenges")
    method = models.CharField(max_length=20, choices=Method.choices)
    destination_masked = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    provider_message_id = models.CharField(max_length=64, blank=True, db_index=True)
    failure_reason = models.CharField(max_length=200, blank=True)
    # Secrets are never stored: an HMAC of the code, a hash of the link's nonce.
    code_hmac = models.CharField(max_length=64, blank=True)
    link_nonce_hash = models.CharField(max_length=64, blank=True, db_index=True)
    # Number matching: the number on the technician's screen and the three the person sees.
    match_number = models.PositiveSmallIntegerField(null=True, blank=True)
    match_choices = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.get_method_display()} ({self.get_status_display()})"

    @property
    def attempts_left(self) -> int:
        return max(self.max_attempts - self.attempts, 0)

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class ChallengeApproval(models.Model):
    """The approver of a manager or peer approval challenge, and their identity check.

    The challenge holds the link's nonce hash and, while a code is out, the HMAC of the
    code texted to the approver's own phone (``Challenge.code_hmac``; its ``attempts``
    count the approver's tries). Once the code is right, ``proof_hash`` is the hash of a
    nonce kept in a cookie of the approver's browser: only that browser may decide.
    """

    class Delivery(models.TextChoices):
        SMS = "sms", "Text message"
        EMAIL = "email", "Email"

    challenge = models.OneToOneField(Challenge, on_delete=models.CASCADE, related_name="approval")
    approver = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="approvals_given")
    link_sent_via = models.CharField(max_length=5, choices=Delivery.choices, default=Delivery.SMS)
    code_sent_via = models.CharField(max_length=5, choices=Delivery.choices, default=Delivery.SMS)
    codes_sent = models.PositiveSmallIntegerField(default=0)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    proof_hash = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"Approval by {self.approver} ({self.challenge})"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class PersonVerificationState(models.Model):
    """Per-person counters that outlive any one request: consecutive failures and the lock."""

    # What the technician is told when a lock carries no reason of its own.
    DEFAULT_LOCK_REASON = "Verification is locked for this person"

    person = models.OneToOneField(Person, on_delete=models.CASCADE, related_name="verification_state")
    consecutive_failures = models.PositiveIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    locked_reason = models.CharField(max_length=200, blank=True)
    # What set the lock: the request (and so its technician, who may never lift it).
    locked_request = models.ForeignKey(
        VerificationRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    locked_technician = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The last lift, kept for the admin (the security event holds the full history).
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lift_reason = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"{self.person}: {'locked' if self.locked_at else 'open'}"


class PersonAuthenticator(models.Model):
    """An end user's TOTP authenticator, enrolled through a one-time link to the phone of record.

    The key is sealed with a key derived from SECRET_KEY (``validation.crypto``);
    ``last_t`` is the last accepted time step, so no code is accepted twice.
    """

    person = models.OneToOneField(Person, on_delete=models.CASCADE, related_name="authenticator")
    sealed_key = models.TextField(blank=True)
    # A new key waits here until the person proves it with a code; the old one keeps working.
    pending_sealed_key = models.TextField(blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_t = models.BigIntegerField(default=-1)
    created_at = models.DateTimeField(default=timezone.now)
    enrollment_nonce_hash = models.CharField(max_length=64, blank=True, db_index=True)
    enrollment_expires_at = models.DateTimeField(null=True, blank=True)
    enrollment_attempts = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"Authenticator of {self.person}"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class OutboxMessage(models.Model):
    """Development SMS outbox: with no Twilio credentials (development mode only), texts
    land here so a person running the demo can read them as "the phone"."""

    to = models.CharField(max_length=20)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    provider_message_id = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"SMS to {self.to} at {self.created_at:%H:%M:%S}"


class SendRecord(models.Model):
    """One message queued to a contact of record (a challenge or an enrolment link): the
    ledger the send limits count (``validation.services.limits``). The destination is kept
    only as an HMAC, so one number is counted across organisations without storing it."""

    class Kind(models.TextChoices):
        CHALLENGE = "challenge", "Challenge"
        ENROLLMENT = "enrollment", "Enrolment link"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    method = models.CharField(max_length=20, blank=True)
    organization = models.ForeignKey(Organization, null=True, on_delete=models.SET_NULL, related_name="+")
    # Indexed with created_at below, as the limits read them.
    person = models.ForeignKey(
        Person, null=True, on_delete=models.SET_NULL, related_name="send_records", db_index=False
    )
    technician = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="send_records", db_index=False
    )
    destination_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Every row's place in one count of all sends, 1, 2, 3, ... with no gaps, in the order of
    # created_at: the global ceilings look up the maximum-th newest send by it in one index
    # step, instead of walking every send in the window (``validation.services.limits``).
    sequence = models.BigIntegerField(unique=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["person", "-created_at"]),
            models.Index(fields=["technician", "-created_at"]),
            models.Index(fields=["destination_hash", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class InboundMessage(models.Model):
    """A text received through Twilio's inbound webhook (or the development outbox's reply
    form): only its MessageSid and what it did, never the body or the full sender. The
    unique MessageSid makes a replayed webhook change nothing, in any process."""

    message_sid = models.CharField(max_length=64, unique=True)
    received_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=20, blank=True)
    challenge = models.ForeignKey(Challenge, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"Inbound {self.message_sid} ({self.outcome or 'pending'})"
