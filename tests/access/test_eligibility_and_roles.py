"""Eligibility is managed by org admins; roles by superusers, within the hard caps."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from guardian.shortcuts import get_perms

from access import services
from access.authorization import grant_allows
from access.models import Eligibility
from access.services import AccessError
from audit.models import SecurityEvent
from tests.access.factories import RoleFactory, approver_group, org_admin_for, technician_for
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_an_org_admin_makes_a_technician_eligible(org, role, technician, org_admin):
    until = timezone.now() + timedelta(days=30)
    eligibility = services.eligibility_create(
        actor=org_admin, technician=technician, role=role, organization=org, valid_until=until
    )
    assert eligibility.created_by == org_admin and eligibility.valid_until == until
    assert SecurityEvent.objects.filter(event_type="access.eligibility_created", target_id=str(eligibility.pk)).exists()
    with pytest.raises(AccessError, match="already eligible"):
        services.eligibility_create(actor=org_admin, technician=technician, role=role, organization=org)


def test_only_org_admins_of_the_organization_manage_eligibility(org, other_org, role, technician, approvers):
    for actor in (technician_for(org), approvers[0], org_admin_for(other_org)):
        with pytest.raises(AccessError, match="Only org admins"):
            services.eligibility_create(actor=actor, technician=technician, role=role, organization=org)


def test_nobody_makes_themselves_eligible(org, role):
    admin_technician = technician_for(org)
    admin_technician.groups.add(org_admin_for(org).groups.get())
    with pytest.raises(AccessError, match="nobody makes themselves eligible"):
        services.eligibility_create(actor=admin_technician, technician=admin_technician, role=role, organization=org)


def test_only_technicians_assigned_to_the_organization_become_eligible(org, other_org, role, org_admin):
    for user in (technician_for(other_org), UserFactory(organizations=[org])):
        with pytest.raises(AccessError, match="not a technician assigned"):
            services.eligibility_create(actor=org_admin, technician=user, role=role, organization=org)


def test_ending_an_eligibility_is_recorded(org, role, technician, org_admin, eligible):
    ended = services.eligibility_end(actor=org_admin, eligibility=eligible, reason="Moved team")
    assert ended.ended_at is not None and ended.ended_by == org_admin
    assert not Eligibility.objects.filter(pk=eligible.pk, ended_at__isnull=True).exists()
    event = SecurityEvent.objects.get(event_type="access.eligibility_ended")
    assert event.details["reason"] == "Moved team"


def test_superusers_define_roles_within_the_hard_caps():
    root = UserFactory(is_superuser=True, is_staff=True)
    data = {"name": "Resets", "actions": ["password_reset"], "approver_group": approver_group()}
    role = services.role_create(actor=root, data={**data, "max_duration": timedelta(hours=8)})
    assert role.max_duration == timedelta(hours=8)
    with pytest.raises(AccessError, match="max_duration"):
        services.role_create(actor=root, data={**data, "name": "Long", "max_duration": timedelta(hours=8, seconds=1)})
    with pytest.raises(AccessError, match="actions"):
        services.role_create(actor=root, data={**data, "name": "Odd", "actions": ["other"]})
    with pytest.raises(AccessError, match="approver_group"):
        services.role_create(actor=root, data={"name": "No approvers", "actions": ["password_reset"]})
    with pytest.raises(AccessError, match="Only superusers"):
        services.role_create(actor=UserFactory(is_staff=True), data={**data, "name": "Mine"})


def test_a_break_glass_role_is_cut_to_its_own_cap(settings):
    settings.ACCESS_BREAK_GLASS_MAX_MINUTES = 30
    with pytest.raises(AccessError, match="max_duration"):
        services.role_create(
            actor=None,
            data={"name": "BG", "actions": ["mfa_reset"], "break_glass": True, "max_duration": timedelta(hours=1)},
        )


def test_a_role_carries_only_organization_object_permissions():
    role = RoleFactory()
    assignment = Permission.objects.get(codename="work_on_organization")
    with pytest.raises(AccessError, match="object permissions on organisations"):
        services.role_update(actor=None, role=role, data={}, permissions=[assignment])
    change_person = Permission.objects.get(codename="change_person")
    with pytest.raises(AccessError):
        services.role_update(actor=None, role=role, data={}, permissions=[change_person])


def test_narrowing_a_role_narrows_grants_in_force_and_their_mirror(approved, activate, technician, org, role):
    view = Permission.objects.get(codename="view_organization")
    services.role_update(actor=None, role=role, data={}, permissions=[view])
    activate(approved())
    assert "view_organization" in get_perms(technician, org)
    services.role_update(actor=None, role=role, data={"actions": ["account_unlock"]}, permissions=[])
    assert not grant_allows(technician=technician, organization=org, action="password_reset")
    assert grant_allows(technician=technician, organization=org, action="account_unlock")
    assert sorted(p for p in get_perms(technician, org) if p.startswith(("jit", "view"))) == ["jit_account_unlock"]
    assert SecurityEvent.objects.get(event_type="access.role_changed", details__fields=["actions", "permissions"])
