"""The auditor's filter form and report period form. Choices come from the user's scope,
so an organisation or actor outside it is an invalid choice, never an empty result."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from django import forms
from django.utils import timezone

from accounts.models import Organization, User
from audit import selectors
from audit.selectors import AuditScope, EventFilter

DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class EventFilterForm(forms.Form):
    organization = forms.ModelChoiceField(
        queryset=Organization.objects.none(), required=False, empty_label="All organisations", label="Organisation"
    )
    actor = forms.ModelChoiceField(
        queryset=User.objects.none(), required=False, empty_label="Anyone", label="Actor (staff)"
    )
    event_type = forms.ChoiceField(choices=(), required=False, label="Event type")
    person = forms.IntegerField(required=False, min_value=1, label="Person id")
    # Set by the staff timeline's links: what a staff member did or had done to their account.
    staff = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    since = forms.DateField(required=False, widget=DATE_WIDGET, label="From (UTC)")
    until = forms.DateField(required=False, widget=DATE_WIDGET, label="To (UTC, inclusive)")
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Text",
        help_text=f"Actor, target or request id contains it (at least {selectors.SEARCH_MIN_LENGTH} characters).",
    )

    def __init__(self, data=None, *, scope: AuditScope):
        super().__init__(data)
        cast(forms.ModelChoiceField, self.fields["organization"]).queryset = selectors.audit_organization_list(
            scope=scope
        )
        cast(forms.ModelChoiceField, self.fields["actor"]).queryset = selectors.audit_staff_list(scope=scope)
        cast(forms.ChoiceField, self.fields["event_type"]).choices = [
            ("", "All events"),
            *selectors.event_type_choices(),
        ]

    def clean_q(self) -> str:
        text = " ".join(self.cleaned_data["q"].split())
        if 0 < len(text) < selectors.SEARCH_MIN_LENGTH:
            raise forms.ValidationError(f"Type at least {selectors.SEARCH_MIN_LENGTH} characters to search.")
        return text

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned

    def event_filter(self) -> EventFilter:
        """The filter; call after ``is_valid()``."""
        data = self.cleaned_data
        return EventFilter(
            organization_id=data["organization"].pk if data.get("organization") else None,
            actor_id=data["actor"].pk if data.get("actor") else None,
            event_type=data.get("event_type") or "",
            person_id=data.get("person"),
            staff_id=data.get("staff"),
            since=data.get("since"),
            until=data.get("until"),
            text=data.get("q") or "",
        )


class ReportForm(forms.Form):
    """One organisation and a period; the last 30 days by default."""

    MAX_DAYS = 366

    organization = forms.ModelChoiceField(queryset=Organization.objects.none(), label="Organisation")
    since = forms.DateField(widget=DATE_WIDGET, label="From (UTC)")
    until = forms.DateField(widget=DATE_WIDGET, label="To (UTC, inclusive)")

    def __init__(self, data=None, *, scope: AuditScope):
        today = timezone.now().date()
        super().__init__(data, initial={"since": today - timedelta(days=29), "until": today})
        cast(forms.ModelChoiceField, self.fields["organization"]).queryset = selectors.audit_organization_list(
            scope=scope
        )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until:
            if since > until:
                self.add_error("until", "The end date is before the start date.")
            elif (until - since).days >= self.MAX_DAYS:
                self.add_error("until", f"A report covers at most {self.MAX_DAYS} days.")
        return cleaned
