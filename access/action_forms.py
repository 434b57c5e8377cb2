"""The form of a gated helpdesk action. It parses shapes only; the service decides (and says
what is missing, or what is wrong with a new contact)."""

from __future__ import annotations

from django import forms


class HelpdeskActionForm(forms.Form):
    verification = forms.IntegerField(
        required=False, min_value=1, max_value=2**53, widget=forms.HiddenInput, error_messages={"invalid": "Bad form."}
    )
    contact_field = forms.ChoiceField(
        required=False,
        choices=[("phone", "Phone of record"), ("email", "Email address of record")],
        widget=forms.RadioSelect,
        label="Which contact changes",
    )
    new_contact = forms.CharField(
        required=False,
        max_length=254,
        label="New phone number or email address",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args, contact_change: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if contact_change:
            self.fields["contact_field"].required = True
            self.fields["contact_field"].error_messages["required"] = "Choose the phone or the email address of record."
            self.fields["new_contact"].required = True
            self.fields["new_contact"].error_messages["required"] = "Enter the new phone number or email address."
        else:
            del self.fields["contact_field"]
            del self.fields["new_contact"]
