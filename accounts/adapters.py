from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.contrib import messages


class PortalAccountAdapter(DefaultAccountAdapter):
    """Staff accounts are created by admins; nobody signs themselves up."""

    def is_open_for_signup(self, request) -> bool:
        return False

    def respond_user_inactive(self, request, user):
        """allauth's "account inactive" page, saying why when the account is locked for
        inactivity (shown only after the right password, like the page itself)."""
        if getattr(user, "locked_at", None) is not None:
            messages.error(
                request,
                f"This account was locked on {user.locked_at:%Y-%m-%d} after "
                f"{settings.STAFF_INACTIVE_LOCK_DAYS} days without sign-in. "
                "Ask an org admin of your organisation to unlock it.",
            )
        return super().respond_user_inactive(request, user)
