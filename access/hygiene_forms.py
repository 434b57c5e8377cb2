"""Forms of the access-hygiene pages: start a review, decide a review item, unlock a staff
account. They check shapes; the services decide and say why not."""

from __future__ import annotations

from django import forms

from access.forms import DATETIME_FORMATS, DATETIME_INPUT
from access.review_models import ReviewItem
from access.services import reviews
from accounts import services as account_services


class ReviewStartForm(forms.Form):
    deadline = forms.DateTimeField(
        required=False,
        label="Deadline (UTC, optional)",
        widget=DATETIME_INPUT,
        input_formats=DATETIME_FORMATS,
        help_text="Leave empty for the default. What is not re-certified by then ends.",
    )


class ReviewDecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[(d.value, d.label) for d in reviews.DECISIONS],
        error_messages={"required": "Choose re-certify or remove.", "invalid_choice": "Choose re-certify or remove."},
    )
    reason = forms.CharField(max_length=reviews.REASON_MAX, required=False, label="Reason")

    def clean(self):
        data = super().clean()
        reason = " ".join((data.get("reason") or "").split())
        if data.get("decision") == ReviewItem.Decision.REMOVED and len(reason) < reviews.REMOVAL_REASON_MIN:
            self.add_error("reason", "Give the reason for removing this eligibility.")
        data["reason"] = reason
        return data


class UnlockForm(forms.Form):
    reason = forms.CharField(
        min_length=account_services.UNLOCK_REASON_MIN,
        max_length=account_services.UNLOCK_REASON_MAX,
        label="Reason",
        error_messages={"required": "Give the reason for unlocking."},
    )
