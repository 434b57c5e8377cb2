"""Forms of the technician's pages and the policy editor. They parse and check shapes; the
services decide (and say why not, with ``VerificationError`` or ``ValidationError``)."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from validation.channels import CHANNELS
from validation.models import Action, ApprovalRequired, Method, VerificationPolicy
from validation.policy import MAX_METHODS, policy_floor_errors
from validation.services.policies import POLICY_FIELDS
from validation.services.requests import TICKET_PATTERN

SENDABLE_METHODS = [(m, label) for m, label in Method.choices if CHANNELS[m].sends_message]


class VerificationStartForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("", "Choose…"), *Action.choices],
        label="What does the caller want?",
        error_messages={
            "required": "Choose what the caller is asking for.",
            "invalid_choice": "Choose what the caller is asking for.",
        },
    )
    ticket_reference = forms.CharField(
        max_length=64,
        label="Ticket reference",
        validators=[
            RegexValidator(TICKET_PATTERN, "Letters, digits and # . _ / : - only, starting with a letter or digit.")
        ],
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "INC-1234"}),
    )


class ChallengeSendForm(forms.Form):
    method = forms.ChoiceField(choices=SENDABLE_METHODS)


class CodeForm(forms.Form):
    """A code the caller reads out: 6 digits (8 for privileged people), spaces ignored."""

    code = forms.CharField(
        max_length=20,
        label="Code the caller reads out",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "pattern": "[0-9 ]*"}),
    )

    def clean_code(self) -> str:
        code = "".join(self.cleaned_data["code"].split())
        if not code.isdigit() or len(code) not in (6, 8):
            raise forms.ValidationError("Enter the 6 or 8 digits the caller reads out.")
        return code


def _methods_field(label: str, *, required: bool) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=Method.choices, widget=forms.CheckboxSelectMultiple, required=required, label=label
    )


class PolicyForm(forms.Form):
    """The fields of ``services.POLICY_FIELDS``. The hard floors are checked by
    ``policy_update`` (portal) or in ``clean`` (admin form below), with the same messages."""

    allowed_methods = _methods_field("Methods that may count", required=False)
    min_methods = forms.IntegerField(min_value=1, max_value=MAX_METHODS, label="Independent methods needed")
    min_strong_methods = forms.IntegerField(
        min_value=0, max_value=MAX_METHODS, label="Of which strong (push or authenticator)"
    )
    required_methods = _methods_field("Methods that must be among them", required=False)
    privileged_extra_methods = forms.IntegerField(
        min_value=0, max_value=2, label="Further methods for privileged people"
    )
    approval_required = forms.ChoiceField(
        choices=ApprovalRequired.choices, label="Manager or peer approval required (counts as one method, not strong)"
    )

    @classmethod
    def initial_for(cls, policy: VerificationPolicy) -> dict:
        return {name: getattr(policy, name) for name in cls.base_fields}


class PolicyAdminForm(forms.ModelForm):
    """The admin's policy form: checkboxes instead of raw JSON, and the floors checked
    before the admin calls ``policy_update`` (which checks them again)."""

    allowed_methods = _methods_field("Allowed methods", required=False)
    required_methods = _methods_field("Required methods", required=False)

    class Meta:
        model = VerificationPolicy
        fields = ["organization", "action", *POLICY_FIELDS]

    def clean(self):
        data = super().clean()
        action = data.get("action") or self.instance.action
        numbers = ("min_methods", "min_strong_methods", "privileged_extra_methods")
        if action and all(data.get(name) is not None for name in numbers):
            errors = policy_floor_errors(
                action=action,
                allowed=list(data.get("allowed_methods") or []),
                min_methods=data["min_methods"],
                min_strong=data["min_strong_methods"],
                required=list(data.get("required_methods") or []),
                privileged_extra=data["privileged_extra_methods"],
                approval_required=data.get("approval_required") or ApprovalRequired.NEVER,
            )
            for name, message in errors.items():
                self.add_error(name, message)
        return data


class LockLiftForm(forms.Form):
    """An org admin's reason for lifting a verification lock (the service checks who may)."""

    reason = forms.CharField(
        min_length=10,
        max_length=500,
        label="Why is it safe to lift the lock?",
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={
            "required": "Give the reason for lifting the lock.",
            "min_length": "Give the reason for lifting the lock (at least 10 characters).",
            "max_length": "Keep the reason under 500 characters.",
        },
    )
