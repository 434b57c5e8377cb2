"""Requests and approvals: who may ask, N of M, self-approval, denial, expiry, emails."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from access import services
from access.models import AccessRequest, Approval
from access.services import AccessError, SelfApprovalError
from audit.models import SecurityEvent
from tests.access.factories import EligibilityFactory, RoleFactory, approver_for, technician_for

pytestmark = pytest.mark.django_db


def test_a_request_records_its_event_and_emails_every_approver(ask, approvers, org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        access_request = ask(justification="Payroll lead locked out, INC-1001 urgent")
    assert access_request.status == AccessRequest.Status.PENDING
    assert access_request.approvals_required == 1
    assert access_request.review_expires_at == access_request.created_at + timedelta(hours=24)
    event = SecurityEvent.objects.get(event_type="access.request_created")
    assert event.details["ticket"] == "INC-1001" and event.organization_id == org.pk
    assert sorted(m.to[0] for m in mail.outbox) == sorted(a.email for a in approvers)
    assert "Payroll lead locked out" in mail.outbox[0].body and "INC-1001" in mail.outbox[0].body


def test_only_eligible_technicians_can_ask(org, role, approvers):
    stranger = technician_for(org)
    with pytest.raises(AccessError, match="not eligible"):
        services.access_request_create(
            actor=stranger, role=role, organization=org, justification="Need to reset", ticket_reference="INC-1"
        )


def test_an_ended_or_lapsed_eligibility_does_not_count(org, role, approvers):
    technician = technician_for(org)
    EligibilityFactory(technician=technician, role=role, organization=org, valid_until=timezone.now() - timedelta(1))
    with pytest.raises(AccessError, match="not eligible"):
        services.access_request_create(
            actor=technician, role=role, organization=org, justification="Need to reset", ticket_reference="INC-1"
        )


def test_eligibility_in_one_organization_does_not_reach_another(ask, technician, other_org, role):
    with pytest.raises(AccessError):
        services.access_request_create(
            actor=technician, role=role, organization=other_org, justification="Need to reset", ticket_reference="I-1"
        )


@pytest.mark.parametrize("duration", [timedelta(hours=2, seconds=1), timedelta(hours=9), timedelta(0)])
def test_the_duration_stays_within_the_role_maximum(ask, duration):
    with pytest.raises(AccessError, match="at most 2 h"):
        ask(duration=duration)


def test_the_default_duration_is_one_hour(ask):
    assert ask(duration=None).requested_duration == timedelta(hours=1)


def test_the_database_refuses_a_duration_over_8_hours(technician, role, org):
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessRequest.objects.create(
            technician=technician,
            role=role,
            organization=org,
            justification="x" * 20,
            ticket_reference="I-1",
            requested_duration=timedelta(hours=8, seconds=1),
            review_expires_at=timezone.now(),
        )


def test_one_open_request_per_role_and_organization(ask):
    ask()
    with pytest.raises(AccessError, match="already have an open request"):
        ask(ticket_reference="INC-2")


def test_a_scheduled_start_must_be_in_the_future(ask):
    with pytest.raises(AccessError, match="future"):
        ask(scheduled_start=timezone.now() - timedelta(minutes=1))


def test_break_glass_roles_are_not_requested(org, technician, approvers):
    from tests.access.factories import BreakGlassRoleFactory

    role = BreakGlassRoleFactory()
    EligibilityFactory(technician=technician, role=role, organization=org)
    with pytest.raises(AccessError, match="break-glass"):
        services.access_request_create(
            actor=technician, role=role, organization=org, justification="Outage", ticket_reference="INC-9"
        )


def test_a_role_needing_more_approvers_than_exist_is_refused_at_once(org, technician):
    role = RoleFactory(approvals_required=2)
    EligibilityFactory(technician=technician, role=role, organization=org)
    approver_for(org)
    with pytest.raises(AccessError, match="needs 2 approver"):
        services.access_request_create(
            actor=technician, role=role, organization=org, justification="Need to reset", ticket_reference="I-1"
        )


def test_the_requester_cannot_approve_their_own_request_even_as_an_approver(ask, technician, approvers):
    technician.groups.add(approvers[0].groups.get())
    access_request = ask()
    with pytest.raises(SelfApprovalError):
        services.access_request_approve(actor=technician, access_request=access_request)
    with pytest.raises(SelfApprovalError):
        services.access_request_deny(actor=technician, access_request=access_request)
    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.PENDING and not access_request.approvals.exists()
    refused = SecurityEvent.objects.filter(event_type="access.self_approval_refused", actor_id=technician.pk)
    assert refused.count() == 2


def test_the_database_refuses_a_self_approval_written_directly(ask, technician):
    access_request = ask()
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(request=access_request, approver=technician, requester=technician, decision="approve")


def test_n_of_m_approvals_and_the_same_approver_counts_once(
    org, technician, approvers, django_capture_on_commit_callbacks
):
    role = RoleFactory(approvals_required=2)
    EligibilityFactory(technician=technician, role=role, organization=org)
    access_request = services.access_request_create(
        actor=technician, role=role, organization=org, justification="Two approvers needed", ticket_reference="I-7"
    )
    services.access_request_approve(actor=approvers[0], access_request=access_request)
    again = services.access_request_approve(actor=approvers[0], access_request=access_request)
    assert again.status == AccessRequest.Status.PENDING
    assert access_request.approvals.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        done = services.access_request_approve(actor=approvers[1], access_request=access_request, comment="ok")
    assert done.status == AccessRequest.Status.APPROVED and done.decided_at is not None
    assert done.activate_by == done.decided_at + timedelta(hours=24)
    assert [m.to for m in mail.outbox] == [[technician.email]] and "approved" in mail.outbox[0].subject.lower()
    with pytest.raises(AccessError, match="no longer pending"):
        services.access_request_approve(actor=approvers[2], access_request=access_request)


def test_one_denial_ends_the_request_whatever_the_approvals(
    org, technician, approvers, django_capture_on_commit_callbacks
):
    role = RoleFactory(approvals_required=3)
    EligibilityFactory(technician=technician, role=role, organization=org)
    access_request = services.access_request_create(
        actor=technician, role=role, organization=org, justification="Three approvers", ticket_reference="I-8"
    )
    services.access_request_approve(actor=approvers[0], access_request=access_request)
    services.access_request_approve(actor=approvers[1], access_request=access_request)
    with django_capture_on_commit_callbacks(execute=True):
        denied = services.access_request_deny(actor=approvers[1], access_request=access_request, comment="Wrong org")
    assert denied.status == AccessRequest.Status.DENIED
    assert access_request.approvals.get(approver=approvers[1]).decision == Approval.Decision.DENY
    assert "Wrong org" in mail.outbox[-1].body and mail.outbox[-1].to == [technician.email]
    with pytest.raises(AccessError):
        services.grant_activate(actor=technician, access_request=access_request)


def test_only_members_of_the_approver_group_working_on_the_organization_approve(ask, org, other_org):
    access_request = ask()
    elsewhere = approver_for(other_org)
    not_an_approver = technician_for(org)
    for outsider in (elsewhere, not_an_approver):
        with pytest.raises(AccessError, match="not an approver"):
            services.access_request_approve(actor=outsider, access_request=access_request)


def test_the_requester_can_cancel_an_open_request(ask, technician, approvers):
    access_request = ask()
    with pytest.raises(AccessError):
        services.access_request_cancel(actor=approvers[0], access_request=access_request)
    cancelled = services.access_request_cancel(actor=technician, access_request=access_request)
    assert cancelled.status == AccessRequest.Status.CANCELLED
    assert ask(ticket_reference="INC-2").status == AccessRequest.Status.PENDING  # no longer open


def test_unreviewed_requests_expire_after_the_review_time(ask, approvers, settings):
    settings.ACCESS_REQUEST_REVIEW_HOURS = 2
    access_request = ask()
    with time_machine.travel(access_request.created_at + timedelta(hours=2) - timedelta(seconds=1), tick=False):
        assert services.access_sweep()["requests_closed"] == 0
    with time_machine.travel(access_request.created_at + timedelta(hours=2, seconds=1), tick=False):
        with pytest.raises(AccessError, match="expired"):
            services.access_request_approve(actor=approvers[0], access_request=access_request)
        assert services.access_sweep()["requests_closed"] == 1
    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.EXPIRED_UNREVIEWED
    assert SecurityEvent.objects.filter(event_type="access.request_expired").count() == 1


def test_approved_requests_not_activated_in_time_lapse(approved, activate):
    access_request = approved()
    with time_machine.travel(access_request.activate_by + timedelta(seconds=1), tick=False):
        with pytest.raises(AccessError, match="lapsed"):
            activate(access_request)
        services.access_sweep()
    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.LAPSED
