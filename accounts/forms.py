"""Forms for the directory and for staff accounts (used by the Django admin)."""

from __future__ import annotations

import phonenumbers
from django import forms
from django.conf import settings
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError

from accounts.models import Person, User


def phone_to_e164(value: str, *, region: str | None = None) -> str:
    """A phone number of record in E.164; national numbers are read in ``region``
    (default ``DIRECTORY_DEFAULT_REGION``). Raises ValidationError for anything that is
    not a valid, complete number, since a challenge sent there would reach nobody."""
    try:
        number = phonenumbers.parse(value, region or settings.DIRECTORY_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationError(
            "Enter a complete phone number, with its country code if it is not a %(region)s number.",
            code="invalid_phone",
            params={"region": region or settings.DIRECTORY_DEFAULT_REGION},
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class PersonForm(forms.ModelForm):
    """A directory entry. The caller narrows ``organization`` and ``manager`` to what the
    user may see; this form checks the manager works in the same organisation."""

    class Meta:
        model = Person
        fields = ["organization", "employee_id", "full_name", "email", "phone", "department", "manager", "privileged"]

    def clean_phone(self) -> str:
        phone = self.cleaned_data["phone"].strip()
        return phone_to_e164(phone) if phone else ""

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip()

    def clean(self):
        cleaned = super().clean()
        manager = cleaned.get("manager")
        if "organization" in self.fields:
            organization_id = cleaned["organization"].pk if cleaned.get("organization") else None
        else:
            organization_id = self.instance.organization_id
        if manager is None:
            return cleaned
        if self.instance.pk is not None and manager.pk == self.instance.pk:
            self.add_error("manager", "A person cannot be their own manager.")
        elif organization_id is not None and manager.organization_id != organization_id:
            self.add_error("manager", "The manager must work in the same organisation.")
        return cleaned


class StaffCreationForm(AdminUserCreationForm):
    """Email and (optionally) a password; roles and flags are set on the next page."""

    class Meta:
        model = User
        fields = ("email", "full_name")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError("A staff user with this email address already exists.", code="unique")
        return email


class StaffChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"
