"""Gated helpdesk actions: the record of each one performed, and each organisation's
directory connector. Imported by ``access.models`` (the app's models module).

Foreign keys to access models are strings, so this module never imports ``access.models``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Organization, Person
from validation.models import Action, VerificationRequest


class PasswordDeliveryChoice(models.TextChoices):
    TEMPORARY_PASSWORD = "temporary_password", "Temporary password shown once to the technician"
    RESET_LINK = "reset_link", "Reset link sent to the person's verified channel"


class DirectoryConnectorConfig(models.Model):
    """Which directory connector performs an organisation's gated actions, and how a
    password reset reaches the person. Without a row: ``DIRECTORY_CONNECTOR_DEFAULT`` and a
    temporary password. Changed by superusers in the Django admin (``directory_connector_set``)."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="directory_connector")
    connector = models.CharField(max_length=40, help_text="A connector from access.connectors.CONNECTORS.")
    password_delivery = models.CharField(
        max_length=20, choices=PasswordDeliveryChoice.choices, default=PasswordDeliveryChoice.TEMPORARY_PASSWORD
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["organization"]
        verbose_name = "directory connector"

    def __str__(self) -> str:
        return f"{self.organization}: {self.connector}"


class HelpdeskAction(models.Model):
    """One gated action performed: allowed by ``grant``, covered by ``verification`` (used
    up by it, hence one-to-one), carried out by ``connector``. Written in the transaction that
    consumes the verification and records ``action.performed``. No secret is stored:
    a temporary password exists only in the one response that shows it."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="helpdesk_actions")
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="helpdesk_actions")
    technician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="helpdesk_actions")
    action = models.CharField(max_length=20, choices=Action.choices)
    verification = models.OneToOneField(VerificationRequest, on_delete=models.PROTECT, related_name="helpdesk_action")
    grant = models.ForeignKey("access.Grant", on_delete=models.PROTECT, related_name="helpdesk_actions")
    connector = models.CharField(max_length=40)
    # The portal's one-time reference (for the ticket) and what the connector returned.
    reference = models.CharField(max_length=20, unique=True)
    connector_reference = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    password_delivery = models.CharField(max_length=20, choices=PasswordDeliveryChoice.choices, blank=True)
    # Contact change: which field, the values before and after (kept to notify both).
    contact_field = models.CharField(max_length=10, blank=True)
    previous_contact = models.CharField(max_length=254, blank=True)
    new_contact = models.CharField(max_length=254, blank=True)
    previous_contact_notified_at = models.DateTimeField(null=True, blank=True)
    new_contact_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["person", "-created_at"]),
            models.Index(fields=["organization", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} for {self.person} ({self.reference})"
