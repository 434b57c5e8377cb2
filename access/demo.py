"""Demo JIT roles and eligibilities for `make run` (development mode only): the demo
technician may request password-reset and MFA-reset roles in both demo organisations,
which the demo approver approves, and has a break-glass role."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from access.models import Eligibility, Role
from access.services import eligibility_create, role_create
from accounts.models import Organization, User
from accounts.models import Role as StaffRole

DEMO_ROLES = (
    {
        "name": "Password resets and unlocks",
        "description": "Reset passwords and unlock accounts of non-privileged people.",
        "actions": ["password_reset", "account_unlock"],
        "max_duration": timedelta(hours=1),
        "approvals_required": 1,
        "requires_mfa_reauth": True,
    },
    {
        "name": "MFA resets and contact changes",
        "description": "Reset MFA and change contacts of record, privileged people included.",
        "actions": ["mfa_reset", "contact_change", "password_reset", "account_unlock"],
        "covers_privileged": True,
        "max_duration": timedelta(hours=1),
        "approvals_required": 1,
        "requires_mfa_reauth": True,
    },
    {
        "name": "Break glass",
        "description": "Emergency access without approval; every org admin is alerted and it is reviewed afterwards.",
        "actions": ["password_reset", "account_unlock", "mfa_reset", "contact_change"],
        "covers_privileged": True,
        "max_duration": timedelta(minutes=30),
        "requires_mfa_reauth": True,
        "break_glass": True,
    },
)


@transaction.atomic
def demo_access_seed() -> list[Role]:
    if not settings.DEBUG:
        raise ImproperlyConfigured("DEBUG: demo access data is for development mode only")
    superuser = User.objects.get(email="admin@demo.example")
    org_admin = User.objects.get(email="orgadmin@demo.example")
    technician = User.objects.get(email="tech@demo.example")
    approvers = Group.objects.get_or_create(name=StaffRole.APPROVER.value)[0]
    roles = []
    for spec in DEMO_ROLES:
        role = Role.objects.filter(name=spec["name"]).first()
        if role is None:
            data = {**spec}
            if not spec.get("break_glass"):
                data["approver_group"] = approvers
            role = role_create(actor=superuser, data=data)
        roles.append(role)
        for organization in Organization.objects.filter(slug__in=("acme", "globex")):
            if not Eligibility.objects.filter(technician=technician, role=role, organization=organization).exists():
                eligibility_create(actor=org_admin, technician=technician, role=role, organization=organization)
    return roles
