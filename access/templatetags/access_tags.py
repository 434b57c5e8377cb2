from datetime import timedelta

from django import template

from access.models import human_duration
from access.selectors import may_approve_any
from validation.models import Action

register = template.Library()
_ACTION_LABELS = dict(Action.choices)


@register.filter
def may_approve_access(user) -> bool:
    """For the navigation: whether the user approves access requests (cached per request)."""
    cached = getattr(user, "_may_approve_access", None)
    if cached is None:
        cached = may_approve_any(user)
        if user.is_authenticated:
            user._may_approve_access = cached
    return cached


@register.filter
def span(value: timedelta | None) -> str:
    """ "1 h", "90 minutes", "8 seconds"."""
    return human_duration(value) if value is not None else "—"


@register.filter
def action_labels(actions) -> str:
    """A role's helpdesk actions, readable: "Password reset, Account unlock"."""
    return ", ".join(str(_ACTION_LABELS.get(a, a)) for a in actions or []) or "nothing"
