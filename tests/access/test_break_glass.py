"""Break-glass: no approval, a short cap, every org admin alerted at once, review required."""

from datetime import timedelta

import pytest
from django.core import mail

from access import services
from access.authorization import grant_allows
from access.models import AccessRequest
from access.services import AccessError
from tests.access.factories import BreakGlassRoleFactory, EligibilityFactory, org_admin_for
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def break_glass(org, technician):
    role = BreakGlassRoleFactory()
    EligibilityFactory(technician=technician, role=role, organization=org)
    return role


def use(technician, role, org, **kwargs):
    return services.break_glass_activate(
        actor=technician,
        role=role,
        organization=org,
        justification="Domain admin locked out during outage",
        ticket_reference="MAJ-1",
        **kwargs,
    )


def test_break_glass_activates_without_approval_and_alerts_every_org_admin_at_once(
    break_glass, technician, org, other_org, django_capture_on_commit_callbacks
):
    admins = [org_admin_for(org) for _ in range(3)]
    org_admin_for(other_org)  # another organisation's admin is not alerted
    with django_capture_on_commit_callbacks(execute=True):
        grant = use(technician, break_glass, org)
    assert grant_allows(technician=technician, organization=org, action="mfa_reset", privileged=True)
    assert grant.review_required and grant.review_pending and grant.break_glass
    assert grant.request.status == AccessRequest.Status.ACTIVE and grant.request.break_glass
    assert grant.expires_at - grant.starts_at == timedelta(minutes=30)
    alerts = [m for m in mail.outbox if "BREAK-GLASS" in m.subject]
    assert sorted(m.to[0] for m in alerts) == sorted(a.email for a in admins)
    assert all(len(m.to) == 1 for m in alerts)
    assert "Domain admin locked out" in alerts[0].body and "MAJ-1" in alerts[0].body


def test_without_org_admins_superusers_are_alerted(break_glass, technician, org, django_capture_on_commit_callbacks):
    root = UserFactory(is_superuser=True, is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        use(technician, break_glass, org)
    assert [m.to for m in mail.outbox] == [[root.email]]


def test_break_glass_is_capped_by_the_setting(break_glass, technician, org, settings):
    settings.ACCESS_BREAK_GLASS_MAX_MINUTES = 15
    with pytest.raises(AccessError, match="at most 15 minutes"):
        use(technician, break_glass, org, duration=timedelta(minutes=20))
    grant = use(technician, break_glass, org)
    assert grant.expires_at - grant.starts_at == timedelta(minutes=15)


def test_break_glass_needs_eligibility_and_a_break_glass_role(org, technician, role):
    with pytest.raises(AccessError, match="not eligible"):
        use(technician, BreakGlassRoleFactory(), org)
    with pytest.raises(AccessError, match="not an available break-glass role"):
        use(technician, role, org)


def test_one_break_glass_grant_at_a_time(break_glass, technician, org):
    use(technician, break_glass, org)
    with pytest.raises(AccessError, match="already hold"):
        use(technician, break_glass, org)


def test_break_glass_requires_mfa_when_the_role_says_so(org, technician):
    role = BreakGlassRoleFactory(requires_mfa_reauth=True)
    EligibilityFactory(technician=technician, role=role, organization=org)
    with pytest.raises(services.ReauthenticationRequired):
        use(technician, role, org)


def test_another_org_admin_reviews_the_use(break_glass, technician, org, other_org, org_admin):
    grant = use(technician, break_glass, org)
    with pytest.raises(AccessError, match="Someone other"):
        services.break_glass_review(actor=technician, grant=grant, notes="fine")
    with pytest.raises(AccessError, match="Only org admins"):
        services.break_glass_review(actor=org_admin_for(other_org), grant=grant, notes="fine")
    reviewed = services.break_glass_review(actor=org_admin, grant=grant, notes="Outage INC confirmed")
    assert reviewed.reviewed_by == org_admin and not reviewed.review_pending
    with pytest.raises(AccessError, match="already been reviewed"):
        services.break_glass_review(actor=org_admin, grant=grant, notes="again")
