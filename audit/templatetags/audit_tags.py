from datetime import timedelta

from django import template

from audit.selectors import user_may_audit

register = template.Library()


@register.filter
def may_audit(user) -> bool:
    """For the navigation: whether the user may open the audit pages (cached per request)."""
    cached = getattr(user, "_may_audit", None)
    if cached is None:
        cached = user_may_audit(user)
        if user.is_authenticated:
            user._may_audit = cached
    return cached


@register.filter
def duration(value: timedelta) -> str:
    """``2 h 05 min`` / ``12 min``."""
    minutes = int(value.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
