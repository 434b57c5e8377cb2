"""``record_only``: the portal changes nothing in the client's directory.

The technician makes the change in the client organisation's own tools; the portal records
that it was allowed (grant and verified caller), consumes the verification and gives the
technician a one-time reference to paste into the ticket and the directory's change note.
"""

from __future__ import annotations

from access.connectors.base import (
    ActionContext,
    ActionResult,
    Channel,
    DirectoryConnector,
    PasswordDelivery,
)

FIELD_LABELS = {"phone": "phone", "email": "email address"}


class RecordOnlyConnector(DirectoryConnector):
    name = "record_only"
    label = "Record only (the technician makes the change in the client's own tools)"
    performs_change = False

    def _done(self, context: ActionContext, instruction: str) -> ActionResult:
        return ActionResult.success(
            reference=context.reference,
            message=(
                f"{instruction} in {context.organization}'s own tools, then paste reference "
                f"{context.reference} into ticket {context.ticket_reference}."
            ),
        )

    def reset_password(
        self,
        context: ActionContext,
        *,
        delivery: PasswordDelivery,
        temporary_password: str | None,
        channel: Channel | None,
    ) -> ActionResult:
        person = context.person
        if delivery == PasswordDelivery.RESET_LINK:
            if channel is None:
                return ActionResult.failure(
                    "The person has no channel of record to send a reset link to.", permanent=True
                )
            where = f"their {FIELD_LABELS.get(channel.kind, channel.kind)} of record {channel.masked}"
            return self._done(context, f"Send {person} a password-reset link to {where}")
        if not temporary_password:
            return ActionResult.failure("No temporary password was generated.", permanent=True)
        return self._done(
            context, f"Set the temporary password shown on this page for {person}, to be changed at next sign-in,"
        )

    def reset_mfa(self, context: ActionContext) -> ActionResult:
        return self._done(context, f"Remove every MFA factor of {context.person} so they enrol again,")

    def unlock(self, context: ActionContext) -> ActionResult:
        return self._done(context, f"Unlock the account of {context.person}")

    def update_contact(self, context: ActionContext, *, field: str, value: str) -> ActionResult:
        if field not in FIELD_LABELS:
            return ActionResult.failure("Only the phone or the email address of record can change.", permanent=True)
        return self._done(
            context, f"Set the {FIELD_LABELS[field]} of record of {context.person} to the one shown on this page"
        )
