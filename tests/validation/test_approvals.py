"""Manager and peer approval: policy, self-approval, scoping, and the technician's controls.
The approver's own pages are in test_approver_pages.py."""

import html
import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from audit.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory
from tests.validation.approval_flows import (
    approval_started,
    approval_token_in,
    approver_code_in,
    identity_confirmed,
    page_url,
    person_with_manager,
    verification_for,
)
from tests.validation.factories import AuthenticatorFactory, technician_for
from tests.validation.helpers import last_text, link_token_in, totp_code
from validation import services
from validation.models import (
    Action,
    Challenge,
    ChallengeApproval,
    Method,
    PersonVerificationState,
    VerificationRequest,
)
from validation.policy import requirement_evaluate, requirement_for
from validation.services import VerificationError


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


@pytest.fixture
def technician(org):
    return technician_for(org, mfa=True)


@pytest.fixture
def staff_client(client, technician):
    client.force_login(technician)
    return client


def push_approved(technician, verification, person, capture):
    with capture(execute=True):
        challenge = services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
    challenge.refresh_from_db()
    services.push_respond(token=link_token_in(last_text(person.phone)), choice=str(challenge.match_number))


# --- Policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action, privileged, needed",
    [
        (Action.MFA_RESET, False, 1),
        (Action.MFA_RESET, True, 1),
        (Action.PASSWORD_RESET, False, 0),
        (Action.PASSWORD_RESET, True, 1),
        (Action.OTHER, True, 1),
    ],
)
def test_default_policy_needs_an_approval_for_privileged_people_and_any_mfa_reset(org, action, privileged, needed):
    requirement = requirement_for(policy=services.policy_for(organization=org, action=action), privileged=privileged)
    assert requirement.approvals == needed
    assert requirement.min_methods >= requirement.min_strong + requirement.approvals


def test_approvals_are_not_strong_and_count_once_together(org):
    requirement = requirement_for(
        policy=services.policy_for(organization=org, action=Action.MFA_RESET), privileged=True
    )
    both = requirement_evaluate(requirement, [Method.MANAGER_APPROVAL, Method.PEER_APPROVAL, Method.SMS_CODE])
    assert both.counted == [Method.MANAGER_APPROVAL, Method.SMS_CODE] and not both.met
    assert any("strong" in item for item in both.missing)
    strong = requirement_evaluate(requirement, [Method.PUSH, Method.PEER_APPROVAL])
    assert not strong.met and strong.missing == ["1 more method from: SMS code or Authenticator app code"]
    assert requirement_evaluate(requirement, [Method.PUSH, Method.PEER_APPROVAL, Method.TOTP]).met


def test_mfa_reset_with_push_and_authenticator_still_waits_for_the_approval(technician, org, outbox, capture):
    person = person_with_manager(org)
    authenticator = AuthenticatorFactory(person=person)
    verification = verification_for(technician, person)
    push_approved(technician, verification, person, capture)
    assert services.totp_check(actor=technician, verification=verification, code=totp_code(authenticator.raw_key))
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.PENDING


def test_manager_approval_completes_an_mfa_reset(client, technician, org, outbox, capture):
    person = person_with_manager(org)
    verification = verification_for(technician, person)
    push_approved(technician, verification, person, capture)
    challenge = approval_started(technician, verification, capture)
    assert challenge.status == Challenge.Status.SENT and challenge.destination_masked == person.manager.masked_phone
    assert challenge.expires_at <= verification.expires_at
    text = last_text(person.manager.phone)
    assert person.full_name not in text and "INC-4242" not in text  # nothing before the approver proves who they are
    token = identity_confirmed(client, person.manager, capture)
    with capture(execute=True):
        response = client.post(page_url(token, "decide"), {"decision": "approve"})
    assert response.status_code == 200 and b"you approved it" in response.content
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED
    events = list(SecurityEvent.objects.filter(details__challenge=challenge.pk).values_list("event_type", flat=True))
    for event in (
        "verification.challenge_created",
        "verification.challenge_sent",
        "verification.approver_code_sent",
        "verification.approver_confirmed",
        "verification.challenge_approved",
    ):
        assert event in events


def test_a_person_without_a_manager_tells_the_technician_to_name_a_peer(technician, org):
    person = PersonFactory(organization=org, privileged=True)
    verification = verification_for(technician, person)
    with pytest.raises(VerificationError, match="no manager in the directory: name a peer"):
        services.approval_start(actor=technician, verification=verification, method=Method.MANAGER_APPROVAL)
    assert not Challenge.objects.exists()


def test_an_org_can_turn_approvals_off_for_an_action(technician, org):
    policy = services.policy_for(organization=org, action=Action.MFA_RESET)
    services.policy_update(
        actor=UserFactory(is_superuser=True),
        policy=policy,
        data={"allowed_methods": ["push"], "min_methods": 1, "approval_required": "never"},
    )
    verification = verification_for(technician, person_with_manager(org))
    with pytest.raises(VerificationError, match="does not accept"):
        services.approval_start(actor=technician, verification=verification, method=Method.MANAGER_APPROVAL)


# --- Self-approval, everywhere -------------------------------------------------------------


def refusals():
    return SecurityEvent.objects.filter(event_type="verification.self_approval_refused")


def test_manager_who_is_the_technician_is_refused_at_start_and_recorded(org, outbox, capture):
    technician = technician_for(org, email="terry@msp.example")
    manager = PersonFactory(organization=org, email="Terry@MSP.example")
    verification = verification_for(technician, PersonFactory(organization=org, manager=manager))
    with pytest.raises(VerificationError, match="a technician cannot approve a verification they run"):
        approval_started(technician, verification, capture)
    assert not Challenge.objects.exists()
    assert refusals().get().details["stage"] == "start"


def test_peer_who_is_the_person_is_refused(technician, org, capture):
    person = PersonFactory(organization=org)
    verification = verification_for(technician, person)
    with pytest.raises(VerificationError, match="cannot approve their own verification"):
        approval_started(technician, verification, capture, Method.PEER_APPROVAL, peer=person)
    assert refusals().count() == 1 and not Challenge.objects.exists()


def test_peer_who_is_the_technician_is_refused(org, capture):
    technician = technician_for(org)
    peer = PersonFactory(organization=org, email=technician.email)
    verification = verification_for(technician, PersonFactory(organization=org))
    with pytest.raises(VerificationError, match="same email as the technician"):
        approval_started(technician, verification, capture, Method.PEER_APPROVAL, peer=peer)
    assert refusals().count() == 1


def test_approver_who_became_the_technician_is_refused_at_approve_time(client, technician, org, outbox, capture):
    person = person_with_manager(org)
    verification = verification_for(technician, person)
    challenge = approval_started(technician, verification, capture)
    token = identity_confirmed(client, person.manager, capture)
    person.manager.email = technician.email.upper()  # e.g. a directory import in the meantime
    person.manager.save()
    response = client.post(page_url(token, "decide"), {"decision": "approve"})
    assert response.status_code == 200 and b"cannot be accepted" in response.content
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.FAILED
    assert refusals().get().details["stage"] == "decide"
    assert client.post(page_url(token, "decide"), {"decision": "approve"}).status_code == 410


def test_approver_sharing_the_persons_phone_is_not_independent(technician, org, capture):
    person = PersonFactory(organization=org)
    peer = PersonFactory(organization=org, phone=person.phone)
    verification = verification_for(technician, person)
    with pytest.raises(VerificationError, match="would not be independent"):
        approval_started(technician, verification, capture, Method.PEER_APPROVAL, peer=peer)


# --- Scoping and peers --------------------------------------------------------------------


def test_peer_from_another_organisation_is_refused_by_the_service(technician, org, capture):
    outsider = PersonFactory(organization=OrganizationFactory())
    verification = verification_for(technician, PersonFactory(organization=org))
    with pytest.raises(VerificationError, match="is not in"):
        approval_started(technician, verification, capture, Method.PEER_APPROVAL, peer=outsider)
    assert not Challenge.objects.exists()


def test_peer_from_an_organisation_the_technician_cannot_see_is_404(staff_client, technician, org):
    verification = verification_for(technician, PersonFactory(organization=org))
    outsider = PersonFactory(organization=OrganizationFactory())
    url = reverse("validation:approval_start", args=[verification.pk])
    assert staff_client.post(url, {"method": "peer_approval", "peer": outsider.pk}).status_code == 404
    assert not Challenge.objects.exists()


def test_peer_from_another_assigned_organisation_is_refused_in_the_page(client, org, capture):
    other = OrganizationFactory()
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org, other], mfa=True)
    client.force_login(technician)
    verification = verification_for(technician, PersonFactory(organization=org))
    outsider = PersonFactory(organization=other)
    url = reverse("validation:approval_start", args=[verification.pk])
    response = client.post(url, {"method": "peer_approval", "peer": outsider.pk}, follow=True)
    assert "is not in" in html.unescape(response.content.decode())
    assert not Challenge.objects.exists()


def test_another_organisations_verification_is_404_for_the_approval_pages(client, org):
    verification = verification_for(technician_for(org), PersonFactory(organization=org))
    outsider = technician_for(OrganizationFactory(), mfa=True)
    client.force_login(outsider)
    assert client.get(reverse("validation:peer_picker", args=[verification.pk]), {"q": "a"}).status_code == 404
    start = reverse("validation:approval_start", args=[verification.pk])
    assert client.post(start, {"method": "manager_approval"}).status_code == 404


def test_peer_picker_lists_only_the_persons_organisation_with_reasons(staff_client, technician, org):
    person = PersonFactory(organization=org, full_name="Pat Person")
    PersonFactory(organization=org, full_name="Pat Peer")
    PersonFactory(organization=OrganizationFactory(), full_name="Pat Outsider")
    verification = verification_for(technician, person)
    page = staff_client.get(reverse("validation:peer_picker", args=[verification.pk]), {"q": "pat"})
    text = html.unescape(page.content.decode())
    assert "Pat Peer" in text and "Pat Outsider" not in text
    assert "Ask Pat Peer to approve" in text and "Ask Pat Person to approve" not in text
    assert "cannot approve their own verification" in text
    assert person.phone not in text


@pytest.mark.parametrize("peer", ["", "abc", "١٢", "9" * 20, "-1"])
def test_malformed_peer_changes_nothing(staff_client, technician, org, peer):
    verification = verification_for(technician, PersonFactory(organization=org))
    url = reverse("validation:approval_start", args=[verification.pk])
    response = staff_client.post(url, {"method": "peer_approval", "peer": peer}, follow=True)
    assert response.status_code in (200, 404) and not Challenge.objects.exists()


def test_a_new_peer_approval_replaces_the_waiting_one(technician, org, outbox, capture):
    verification = verification_for(technician, PersonFactory(organization=org))
    first = approval_started(
        technician, verification, capture, Method.PEER_APPROVAL, peer=PersonFactory(organization=org)
    )
    approval_started(technician, verification, capture, Method.PEER_APPROVAL, peer=PersonFactory(organization=org))
    first.refresh_from_db()
    assert first.status == Challenge.Status.EXPIRED and "Replaced" in first.failure_reason


def test_approver_without_a_phone_gets_the_link_and_the_code_by_email(client, technician, org, outbox, capture):
    manager = PersonFactory(organization=org, phone="", email="mona@client.example")
    person = PersonFactory(organization=org, manager=manager)
    verification = verification_for(technician, person)
    challenge = approval_started(technician, verification, capture)
    assert challenge.status == Challenge.Status.SENT and challenge.destination_masked == "m•••@client.example"
    (link_mail,) = mail.outbox
    assert link_mail.to == ["mona@client.example"]
    token = approval_token_in(link_mail.body)
    assert b"m\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2@client.example" in client.get(page_url(token)).content
    with capture(execute=True):
        client.post(page_url(token, "code"))
    code = approver_code_in(mail.outbox[-1].body)
    assert client.post(page_url(token, "confirm"), {"code": code}).status_code == 302
    assert ChallengeApproval.objects.get().code_sent_via == "email"


# --- The technician's live view -----------------------------------------------------------


def test_live_status_shows_the_approvals_progress(staff_client, client, technician, org, outbox, capture):
    person = person_with_manager(org, privileged=True)
    verification = verification_for(technician, person, Action.PASSWORD_RESET)
    detail = reverse("validation:detail", args=[verification.pk])
    page = html.unescape(staff_client.get(detail).content.decode())
    assert "Ask manager Morgan Manager to approve" in page and "A manager or peer approval is required" in page

    with capture(execute=True):
        response = staff_client.post(
            reverse("validation:approval_start", args=[verification.pk]), {"method": "manager_approval"}, follow=True
        )
    page = html.unescape(response.content.decode())
    assert "Approval link on its way to Morgan Manager" in page and "sending the link" in page
    page = html.unescape(staff_client.get(detail).content.decode())
    assert "link sent by text message to •••• " in page and "Waiting for them to open the link" in page
    assert person.manager.phone not in page

    approver = client.__class__()
    token = identity_confirmed(approver, person.manager, capture)
    assert "Confirmed who they are at" in html.unescape(staff_client.get(detail).content.decode())
    approver.post(page_url(token, "decide"), {"decision": "approve"})
    page = html.unescape(staff_client.get(detail).content.decode())
    assert re.search(r"Morgan Manager</strong>\s+approved at \d\d:\d\d:\d\d UTC", page) and "Ask manager" not in page


def test_a_waiting_manager_approval_cannot_be_sent_twice(technician, org, outbox, capture):
    verification = verification_for(technician, person_with_manager(org))
    approval_started(technician, verification, capture)
    with pytest.raises(VerificationError, match="already waiting"):
        approval_started(technician, verification, capture)


def test_only_the_technician_who_started_it_asks_for_an_approval(org, outbox, capture):
    verification = verification_for(technician_for(org), person_with_manager(org))
    with pytest.raises(VerificationError, match="Only the technician"):
        approval_started(technician_for(org), verification, capture)


def test_approval_link_never_outlives_the_request(technician, org, outbox, capture, settings):
    verification = verification_for(technician, person_with_manager(org))
    with time_machine.travel(verification.expires_at - timedelta(minutes=1)):
        challenge = approval_started(technician, verification, capture)
    assert challenge.expires_at == verification.expires_at


def test_deny_is_a_failure_but_not_a_fraud_report(client, technician, org, outbox, capture):
    person = person_with_manager(org)
    verification = verification_for(technician, person)
    approval_started(technician, verification, capture)
    token = identity_confirmed(client, person.manager, capture)
    response = client.post(page_url(token, "decide"), {"decision": "deny"})
    assert response.status_code == 200 and b"You denied the request" in response.content
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.FAILED and "denied" in verification.ended_reason
    state = PersonVerificationState.objects.get(person=person)
    assert state.locked_at is None and state.consecutive_failures == 1
    assert not SecurityEvent.objects.filter(event_type="verification.fraud_reported").exists()
    assert SecurityEvent.objects.filter(event_type="verification.approval_denied").count() == 1


def test_codes_and_links_never_reach_the_security_log(client, technician, org, outbox, capture):
    person = person_with_manager(org)
    verification = verification_for(technician, person)
    approval_started(technician, verification, capture)
    token = approval_token_in(last_text(person.manager.phone))
    with capture(execute=True):
        client.post(page_url(token, "code"))
    code = approver_code_in(last_text(person.manager.phone))
    client.post(page_url(token, "confirm"), {"code": code})
    dump = str(list(SecurityEvent.objects.values_list("details", flat=True)))
    assert code not in dump and token not in dump and person.manager.phone not in dump
    assert ChallengeApproval.objects.get().proof_hash not in client.cookies["approver_proof"].value
    assert timezone.now() < Challenge.objects.get().expires_at


def test_approval_links_count_against_the_approvers_send_limits(org, technician, capture, settings, outbox):
    """A manager asked to approve for three reports within the hour: the destination limit
    (here 2 per hour) refuses the third link, says so, and records it; no challenge is left."""
    settings.VERIFICATION_SEND_LIMIT_DESTINATION = 2
    manager = PersonFactory(organization=org, full_name="Morgan Manager")
    verifications = [verification_for(technician, PersonFactory(organization=org, manager=manager)) for _ in range(3)]
    for verification in verifications[:2]:
        approval_started(technician, verification, capture)
    with pytest.raises(VerificationError, match="Send limit reached"):
        approval_started(technician, verifications[2], capture)
    assert not verifications[2].challenges.exists()
    event = SecurityEvent.objects.filter(event_type="verification.send_limited").get()
    assert event.details["limit"] == "destination" and manager.phone not in str(event.details)
