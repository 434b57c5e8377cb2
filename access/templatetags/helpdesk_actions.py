"""The "Actions" section of the person page, and masking of contacts in action records."""

from django import template

from access import action_selectors, params
from access.services.action_contacts import mask_contact

register = template.Library()


@register.inclusion_tag("access/actions/_person_actions.html", takes_context=True)
def person_actions(context, person):
    """Each gated action with its two conditions for the signed-in technician (advice only:
    the action page and the service decide), and the person's recent actions."""
    user = context["request"].user
    rows = [
        action_selectors.action_readiness(technician=user, person=person, action=action)
        for action in params.GRANTABLE_ACTIONS
    ]
    recent = action_selectors.helpdesk_action_list_for_person(person=person, limit=5)
    return {"person": person, "rows": rows, "recent": recent}


@register.filter
def masked_contact(value: str, field: str) -> str:
    return mask_contact(field, value or "")
