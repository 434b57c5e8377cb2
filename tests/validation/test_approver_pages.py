"""The approver's pages behind the one-time link: identity code, approve or deny, replays,
expiry, concurrent answers, and arbitrary input (never a 500, nothing changes)."""

import html
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import time_machine
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory
from tests.validation.approval_flows import (
    approval_started,
    approval_token_in,
    approver_code_in,
    identity_confirmed,
    page_url,
    person_with_manager,
    texts_to,
    verification_for,
)
from tests.validation.factories import technician_for
from tests.validation.helpers import last_text
from validation import services
from validation.models import (
    Challenge,
    ChallengeApproval,
    PersonVerificationState,
    VerificationRequest,
)

PROPERTY = hypothesis_settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


@pytest.fixture
def sent(org, technician, outbox, capture):
    """A privileged person's MFA reset with a manager approval texted to the manager:
    (verification, challenge, manager, token)."""
    person = person_with_manager(org, privileged=True)
    verification = verification_for(technician, person)
    challenge = approval_started(technician, verification, capture)
    return verification, challenge, person.manager, approval_token_in(last_text(person.manager.phone))


def snapshot():
    """Everything an answer could change."""
    return (
        list(Challenge.objects.order_by("pk").values()),
        list(ChallengeApproval.objects.order_by("pk").values()),
        list(VerificationRequest.objects.order_by("pk").values()),
        list(PersonVerificationState.objects.order_by("pk").values()),
    )


def text(response) -> str:
    return html.unescape(response.content.decode())


def assert_clear_refusal(response):
    assert 400 <= response.status_code < 500, response.status_code
    assert re.search(r"<h1[^>]*>[^<]+</h1>", response.content.decode())


def code_requested(client, token, manager, capture) -> str:
    with capture(execute=True):
        assert client.post(page_url(token, "code")).status_code == 302
    return approver_code_in(last_text(manager.phone))


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


# --- The pages ----------------------------------------------------------------------------


def test_before_confirming_the_page_says_nothing_about_the_request(client, sent):
    verification, _, manager, token = sent
    page = text(client.get(page_url(token)))
    assert "Your approval is needed" in page and manager.masked_phone in page
    for secret in (verification.person.full_name, "INC-4242", verification.technician.full_name, manager.phone):
        assert secret not in page


def test_after_confirming_the_page_shows_who_asks_what_and_for_whom_masked(client, sent, capture):
    verification, _, manager, token = sent
    identity_confirmed(client, manager, capture)
    page = text(client.get(page_url(token)))
    person, technician = verification.person, verification.technician
    for fact in (technician.full_name, "MFA reset", "INC-4242", person.full_name, person.masked_phone, "Approve"):
        assert fact in page
    for secret in (person.phone, person.phone.lstrip("+"), person.email, manager.phone, technician.email, token):
        assert secret not in page
    assert re.search(r'<button type="submit" name="decision" value="deny"', page)


def test_get_changes_nothing_and_responses_are_private(client, sent):
    before = snapshot()
    response = client.get(page_url(sent[3]))
    assert snapshot() == before
    assert "no-store" in response["Cache-Control"] and response["Referrer-Policy"] == "no-referrer"


def test_only_the_browser_that_confirmed_may_decide(client, sent, capture):
    _, challenge, manager, token = sent
    identity_confirmed(client, manager, capture)
    stranger = Client()
    before = snapshot()
    response = stranger.post(page_url(token, "decide"), {"decision": "approve"})
    assert response.status_code == 400 and "Confirm who you are first" in text(response)
    stranger.cookies["approver_proof"] = "forged-proof"
    assert stranger.post(page_url(token, "decide"), {"decision": "approve"}).status_code == 400
    assert snapshot() == before


def test_replayed_link_is_refused_after_an_answer(client, sent, capture):
    verification, challenge, manager, token = sent
    identity_confirmed(client, manager, capture)
    assert client.post(page_url(token, "decide"), {"decision": "approve"}).status_code == 200
    before = snapshot()
    for step, data in (("", None), ("code", {}), ("confirm", {"code": "123456"}), ("decide", {"decision": "deny"})):
        response = client.post(page_url(token, step), data) if step else client.get(page_url(token))
        assert response.status_code == 410, step
        assert "Nothing has been approved or changed" in text(response)
    assert snapshot() == before
    assert SecurityEvent.objects.filter(event_type="verification.link_rejected", details__page="approver").count() == 3


def test_approval_after_the_request_expired_is_refused(client, sent, capture):
    verification, challenge, manager, token = sent
    identity_confirmed(client, manager, capture)
    with time_machine.travel(verification.expires_at, tick=False):
        before = snapshot()
        assert client.get(page_url(token)).status_code == 410
        assert client.post(page_url(token, "decide"), {"decision": "approve"}).status_code == 410
        assert snapshot() == before
        services.verification_expire_stale()
    challenge.refresh_from_db()
    verification.refresh_from_db()
    assert challenge.status == Challenge.Status.EXPIRED and verification.status == VerificationRequest.Status.EXPIRED


def test_code_expires_but_a_new_one_can_be_asked_for(client, sent, capture, settings):
    _, _, manager, token = sent
    code = code_requested(client, token, manager, capture)
    with time_machine.travel(ChallengeApproval.objects.get().code_expires_at, tick=False):
        response = client.post(page_url(token, "confirm"), {"code": code})
        assert response.status_code == 400 and "expired" in text(response)
    assert Challenge.objects.get().attempts == 0
    new_code = code_requested(client, token, manager, capture)
    assert client.post(page_url(token, "confirm"), {"code": code}).status_code in (302, 400)  # old: wrong now
    if new_code != code:
        assert client.post(page_url(token, "confirm"), {"code": new_code}).status_code == 302


def test_wrong_identity_code_five_times_ends_the_challenge_not_the_person(client, sent, capture):
    verification, challenge, manager, token = sent
    code = code_requested(client, token, manager, capture)
    for left in (4, 3, 2, 1):
        response = client.post(page_url(token, "confirm"), {"code": wrong(code)})
        assert response.status_code == 400 and f"{left} attempt" in text(response)
    response = client.post(page_url(token, "confirm"), {"code": wrong(code)})
    assert response.status_code == 410 and "last attempt" in text(response)
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.FAILED and challenge.attempts == 5 and not challenge.code_hmac
    assert client.post(page_url(token, "confirm"), {"code": code}).status_code == 410  # even the right one
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.PENDING  # the technician can ask a peer
    assert not PersonVerificationState.objects.filter(consecutive_failures__gt=0).exists()
    assert SecurityEvent.objects.filter(event_type="verification.approver_wrong_code").count() == 5


def test_at_most_three_codes_are_sent(client, sent, capture):
    _, _, manager, token = sent
    before = texts_to(manager.phone)
    for _ in range(3):
        code_requested(client, token, manager, capture)
    with capture(execute=True):
        response = client.post(page_url(token, "code"))
    assert response.status_code == 400 and "3 codes have been sent already" in text(response)
    assert texts_to(manager.phone) == before + 3


def test_identity_codes_count_against_the_approvers_destination_limit(client, sent, capture, settings):
    """A link and its codes are messages to the approver's phone: with at most 2 per hour to
    one number, the link and a first code go, a second code is refused on the page, and the
    refusal is recorded."""
    from audit.models import SecurityEvent

    settings.VERIFICATION_SEND_LIMIT_DESTINATION = 2
    _, _, manager, token = sent
    before = texts_to(manager.phone)
    code_requested(client, token, manager, capture)
    with capture(execute=True):
        response = client.post(page_url(token, "code"))
    assert response.status_code == 400 and "Send limit reached" in text(response)
    assert texts_to(manager.phone) == before + 1
    assert SecurityEvent.objects.filter(event_type="verification.send_limited").count() == 1


def test_an_approver_whose_phone_changed_after_the_link_gets_no_code_and_cannot_decide(client, sent, capture):
    """A SIM swap of the approver after the link went out: the new number of record gets no
    identity code, and a browser that confirmed before the change cannot decide after it."""
    from django.utils import timezone

    verification, challenge, manager, token = sent
    proof_client_token = identity_confirmed(client, manager, capture)
    manager.phone, manager.contact_changed_at = "+12025550199", timezone.now()
    manager.save(update_fields=["phone", "contact_changed_at"])
    before = snapshot()
    response = client.post(page_url(proof_client_token, "decide"), {"decision": "approve"})
    assert response.status_code == 400 and "can no longer be given" in text(response)
    with capture(execute=True):
        response = client.post(page_url(token, "code"))
    assert response.status_code == 400 and "can no longer be given" in text(response)
    assert snapshot() == before and texts_to(manager.phone) == 0


def test_a_code_entered_before_it_was_sent_costs_no_attempt(client, sent):
    token = sent[3]
    client.post(page_url(token, "code"))  # the on-commit send never runs in this test transaction
    response = client.post(page_url(token, "confirm"), {"code": "123456"})
    assert response.status_code == 400 and "wait a moment" in text(response)
    assert Challenge.objects.get().attempts == 0


def test_a_forged_link_is_not_found(client, sent):
    token = sent[3]
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert client.get(page_url(forged)).status_code == 404


# --- Properties ---------------------------------------------------------------------------


@given(code=st.text(max_size=24))
@PROPERTY
def test_arbitrary_identity_codes_never_500_and_malformed_ones_change_nothing(
    client, org, technician, outbox, capture, code
):
    if not Challenge.objects.exists():  # fixtures are set up once for every example
        verification = verification_for(technician, person_with_manager(org))
        approval_started(technician, verification, capture)
    approval = ChallengeApproval.objects.select_related("approver").get()
    token = approval_token_in(last_text(approval.approver.phone))
    digits = "".join(code.split())
    assume(not (digits.isascii() and digits.isdigit() and len(digits) in (6, 8)))
    before = snapshot()
    response = client.post(page_url(token, "confirm"), {"code": code})
    assert response.status_code == 400
    assert_clear_refusal(response)
    assert snapshot() == before


@given(
    decision=st.text(max_size=24), proof=st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40)
)
@PROPERTY
def test_arbitrary_decisions_and_proofs_never_500_and_change_nothing(
    client, org, technician, outbox, capture, decision, proof
):
    if not Challenge.objects.exists():
        verification = verification_for(technician, person_with_manager(org))
        approval_started(technician, verification, capture)
    approval = ChallengeApproval.objects.select_related("approver").get()
    token = approval_token_in(last_text(approval.approver.phone))
    client.cookies["approver_proof"] = proof
    before = snapshot()
    response = client.post(page_url(token, "decide"), {"decision": decision})
    assert_clear_refusal(response)
    assert snapshot() == before


@given(data=st.data())
@PROPERTY
def test_arbitrary_links_on_every_approver_page_change_nothing(client, org, technician, outbox, capture, data):
    if not Challenge.objects.exists():
        verification = verification_for(technician, person_with_manager(org))
        approval_started(technician, verification, capture)
    approval = ChallengeApproval.objects.select_related("approver").get()
    token = approval_token_in(last_text(approval.approver.phone))
    bad = data.draw(st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=250))
    assume(bad != token)
    form = data.draw(st.dictionaries(st.sampled_from(["code", "decision", "x"]), st.text(max_size=30), max_size=3))
    before = snapshot()
    assert_clear_refusal(client.get(page_url(bad)))
    for step in ("code", "confirm", "decide"):
        assert_clear_refusal(client.post(page_url(bad, step), form))
    assert snapshot() == before


# --- Concurrency (real transactions) --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rounds", [4])
def test_concurrent_approve_and_deny_one_wins_consistently(settings, rounds):
    settings.SMS_DEV_OUTBOX = True
    org = OrganizationFactory()
    technician = technician_for(org)
    for _ in range(rounds):
        verification = verification_for(technician, person_with_manager(org))
        services.approval_start(actor=technician, verification=verification, method="manager_approval")
        approval = ChallengeApproval.objects.select_related("approver").get(challenge__request=verification)
        client = Client()
        token = identity_confirmed(client, approval.approver, _no_capture)
        proof = client.cookies["approver_proof"].value
        barrier = threading.Barrier(2)

        def answer(decision, barrier=barrier, token=token, proof=proof):
            barrier.wait()
            try:
                return services.approval_decide(token=token, decision=decision, proof=proof)
            except Exception as exc:  # noqa: BLE001  (the loser's refusal is the result)
                return type(exc).__name__
            finally:
                connection.close()

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(answer, ["approve", "deny"]))
        assert sorted(results) in (["BadLink", "approved"], ["BadLink", "denied"]), results
        challenge = Challenge.objects.get(request=verification)
        verification.refresh_from_db()
        if "approved" in results:
            assert challenge.status == Challenge.Status.APPROVED
            assert verification.status == VerificationRequest.Status.PENDING  # the push is still missing
        else:
            assert challenge.status == Challenge.Status.DENIED
            assert verification.status == VerificationRequest.Status.FAILED
        decided = SecurityEvent.objects.filter(
            details__challenge=challenge.pk,
            event_type__in=["verification.challenge_approved", "verification.approval_denied"],
        )
        assert decided.count() == 1


class _NoCapture:
    """Outside a test transaction, on-commit callbacks run by themselves."""

    def __call__(self, execute=True):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_no_capture = _NoCapture()


def test_approver_link_tokens_are_redacted_from_logs():
    from validation.log_filters import redact_link_tokens

    assert (
        redact_link_tokens('"POST /a/tok:1x:sig/confirm/ HTTP/1.1" 400') == '"POST /a/[redacted]/confirm/ HTTP/1.1" 400'
    )
