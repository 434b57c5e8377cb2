"""Forms of the access pages. They parse and check shapes; the services decide (and say
why not, with ``AccessError``), and the views show their messages on the form."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from django import forms
from django.core.validators import RegexValidator
from django.db.models import QuerySet

from access.models import Eligibility, Grant, Role, human_duration
from accounts.models import User
from validation.services.requests import TICKET_PATTERN

# Durations offered besides each role's own maximum; the service checks the role's cap.
DURATION_STEPS = (
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
)
DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


def _ticket_field() -> forms.CharField:
    return forms.CharField(
        max_length=64,
        label="Ticket reference",
        validators=[
            RegexValidator(TICKET_PATTERN, "Letters, digits and # . _ / : - only, starting with a letter or digit.")
        ],
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "INC-1234"}),
    )


def _justification_field() -> forms.CharField:
    return forms.CharField(
        max_length=2000,
        label="Justification",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What you will do with this access and why now; approvers read this.",
    )


class EligibilityChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Eligibility) -> str:
        return f"{obj.role.name} in {obj.organization.name} (at most {human_duration(obj.role.effective_max_duration)})"


def _preselect_the_only(form: forms.Form, eligibilities: list[Eligibility]) -> None:
    if not form.is_bound and not form.initial.get("eligibility") and len(eligibilities) == 1:
        form.initial["eligibility"] = eligibilities[0].pk


def duration_choices(roles: list[Role]) -> list[tuple[str, str]]:
    """Seconds as values: the usual steps up to the longest role maximum, and each maximum."""
    maxima = {role.effective_max_duration for role in roles}
    longest = max(maxima, default=timedelta(0))
    options = sorted({step for step in DURATION_STEPS if step <= longest} | maxima)
    return [("", "Default: 1 h, or the role's maximum if shorter")] + [
        (str(int(d.total_seconds())), human_duration(d)) for d in options
    ]


class AccessRequestForm(forms.Form):
    """Ask for one of the technician's eligible (non break-glass) roles. ``extends`` links
    an extension to the technician's grant in force; the grant itself never changes."""

    eligibility = EligibilityChoiceField(
        queryset=Eligibility.objects.none(),
        label="Role and organisation",
        empty_label="Choose…",
        error_messages={"invalid_choice": "Choose one of the roles you are eligible for."},
    )
    duration = forms.TypedChoiceField(
        choices=[], coerce=lambda s: timedelta(seconds=int(s)), empty_value=None, required=False, label="Duration"
    )
    justification = _justification_field()
    ticket_reference = _ticket_field()
    scheduled_start = forms.DateTimeField(
        required=False,
        label="Scheduled start (UTC, optional)",
        widget=DATETIME_INPUT,
        input_formats=DATETIME_FORMATS,
        help_text="Leave empty to start the clock when you activate.",
    )
    extends = forms.ModelChoiceField(queryset=Grant.objects.none(), required=False, widget=forms.HiddenInput)

    def __init__(self, *args, eligibilities: QuerySet[Eligibility], grants: QuerySet[Grant], **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["eligibility"]).queryset = eligibilities
        offered = list(eligibilities)
        cast(forms.ChoiceField, self.fields["duration"]).choices = duration_choices([e.role for e in offered])
        _preselect_the_only(self, offered)
        cast(forms.ModelChoiceField, self.fields["extends"]).queryset = grants
        self.fields["extends"].error_messages["invalid_choice"] = "That grant is not yours or no longer in force."


class BreakGlassForm(forms.Form):
    eligibility = EligibilityChoiceField(
        queryset=Eligibility.objects.none(),
        label="Break-glass role and organisation",
        empty_label="Choose…",
        error_messages={"invalid_choice": "Choose one of the break-glass roles you are eligible for."},
    )
    justification = _justification_field()
    ticket_reference = _ticket_field()
    confirm = forms.BooleanField(
        label="I understand that every org admin is alerted now and that this use will be reviewed.",
        error_messages={"required": "Confirm that you understand what break-glass access sets off."},
    )

    def __init__(self, *args, eligibilities: QuerySet[Eligibility], **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["eligibility"]).queryset = eligibilities
        _preselect_the_only(self, list(eligibilities))


class DecisionForm(forms.Form):
    comment = forms.CharField(
        max_length=2000, required=False, label="Comment (optional)", widget=forms.Textarea(attrs={"rows": 2})
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        label="Reason",
        error_messages={"required": "Give the reason."},
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False, label="Reason (optional)")


class ReviewForm(forms.Form):
    notes = forms.CharField(
        max_length=4000,
        label="Review notes",
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write what the review found."},
    )


class TechnicianChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return f"{obj} ({obj.email})" if obj.full_name else obj.email


class EligibilityCreateForm(forms.Form):
    technician = TechnicianChoiceField(queryset=User.objects.none(), empty_label="Choose…")
    role = forms.ModelChoiceField(queryset=Role.objects.filter(active=True), empty_label="Choose…")
    valid_until = forms.DateTimeField(
        required=False,
        label="Eligible until (UTC, optional)",
        widget=DATETIME_INPUT,
        input_formats=DATETIME_FORMATS,
    )

    def __init__(self, *args, technicians: QuerySet[User], **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["technician"]).queryset = technicians
