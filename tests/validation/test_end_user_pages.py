"""The pages an end user opens on their phone: number-matched approval and authenticator enrolment."""

import base64
import html
import re
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import SecurityEvent
from tests.validation.helpers import last_text, link_token_in, totp_code
from validation import crypto, services
from validation.models import (
    Action,
    Challenge,
    Method,
    PersonAuthenticator,
    PersonVerificationState,
    VerificationRequest,
)

PROPERTY = hypothesis_settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Anything a URL path segment can hold once percent-encoded (a "/" would leave the route).
ANY_TOKEN = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=250)


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def push_sent(technician, person, capture, action=Action.PASSWORD_RESET):
    """A verification with a push challenge texted to the person: (verification, challenge, token)."""
    verification = services.verification_request_create(
        actor=technician, person=person, action=action, ticket_reference="INC-1001"
    )
    with capture(execute=True):
        challenge = services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
    challenge.refresh_from_db()
    return verification, challenge, link_token_in(last_text(person.phone))


def enrollment_sent(technician, person, capture):
    """A pending enrolment texted to the person: (authenticator, raw pending key, token)."""
    with capture(execute=True):
        authenticator = services.enrollment_start(actor=technician, person=person)
    authenticator.refresh_from_db()
    return authenticator, crypto.unseal(authenticator.pending_sealed_key), link_token_in(last_text(person.phone))


def push_url(token):
    return reverse("validation:push_respond", kwargs={"token": token})


def enroll_url(token):
    return reverse("validation:enroll", kwargs={"token": token})


def wrong_code(raw_key):
    near = {totp_code(raw_key, offset_steps=s) for s in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(0, 1_000_000, 111_111)) if c not in near)


def snapshot():
    """Everything an answer could change."""
    return (
        list(Challenge.objects.order_by("pk").values()),
        list(VerificationRequest.objects.order_by("pk").values()),
        list(PersonAuthenticator.objects.order_by("pk").values()),
        list(PersonVerificationState.objects.order_by("pk").values()),
    )


def tampered(token):
    return token[:-2] + ("AA" if token[-2:] != "AA" else "BB")


# --- Number-matched approval ----------------------------------------------------------


def test_push_page_shows_who_asks_and_exactly_the_three_numbers(client, technician, person, outbox, capture):
    verification, challenge, token = push_sent(technician, person, capture)
    response = client.get(push_url(token))
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    for fact in (person.organization.name, technician.full_name, "Password reset", "INC-1001"):
        assert fact in page
    assert re.findall(r'name="choice" value="(\d+)"', page) == [str(n) for n in challenge.match_choices]
    assert len(set(challenge.match_choices)) == 3
    for secret in (person.phone, person.phone.lstrip("+"), person.email, person.employee_id, technician.email, token):
        assert secret not in page
    assert 'value="deny"' in page and 'value="fraud"' in page and "I didn't request this" in page


def test_push_page_get_changes_nothing(client, technician, person, outbox, capture):
    push_sent(technician, person, capture)
    token = link_token_in(last_text(person.phone))
    before = snapshot()
    for _ in range(3):
        assert client.get(push_url(token)).status_code == 200
    assert snapshot() == before


@pytest.mark.parametrize("action", [Action.PASSWORD_RESET, Action.OTHER])
def test_right_number_verifies(client, technician, person, outbox, capture, action):
    verification, challenge, token = push_sent(technician, person, capture, action)
    response = client.post(push_url(token), {"choice": str(challenge.match_number)})
    assert response.status_code == 200
    assert "you confirmed it" in response.content.decode()
    assert "can now go ahead" in response.content.decode()
    verification.refresh_from_db()
    challenge.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED
    assert challenge.status == Challenge.Status.APPROVED


def test_right_number_on_a_two_method_action_asks_for_one_more_check(client, technician, person, outbox, capture):
    verification, challenge, token = push_sent(technician, person, capture, Action.MFA_RESET)
    response = client.post(push_url(token), {"choice": str(challenge.match_number)})
    assert "may ask you for one more check" in response.content.decode()
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.PENDING


def test_wrong_number_stops_the_challenge(client, technician, person, outbox, capture):
    verification, challenge, token = push_sent(technician, person, capture)
    wrong = next(n for n in challenge.match_choices if n != challenge.match_number)
    response = client.post(push_url(token), {"choice": str(wrong)})
    assert response.status_code == 200
    html = response.content.decode()
    assert "That was not the number the technician sees" in html and "This request has been stopped" in html
    challenge.refresh_from_db()
    verification.refresh_from_db()
    assert challenge.status == Challenge.Status.FAILED
    assert verification.status == VerificationRequest.Status.PENDING  # the technician may send a new one
    assert PersonVerificationState.objects.get(person=person).consecutive_failures == 1


def test_deny_fails_the_request(client, technician, person, outbox, capture):
    verification, challenge, token = push_sent(technician, person, capture)
    response = client.post(push_url(token), {"choice": "deny"})
    assert response.status_code == 200
    assert "You denied the request" in response.content.decode()
    assert "Nothing was changed" in response.content.decode()
    verification.refresh_from_db()
    challenge.refresh_from_db()
    assert verification.status == VerificationRequest.Status.FAILED
    assert challenge.status == Challenge.Status.DENIED


def test_fraud_report_locks_the_person_and_says_nothing_changed(client, technician, person, outbox, capture):
    verification, challenge, token = push_sent(technician, person, capture)
    response = client.post(push_url(token), {"choice": "fraud"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing was changed on your account" in html and "recorded in the helpdesk's security log" in html
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.LOCKED
    assert PersonVerificationState.objects.get(person=person).locked_at is not None
    assert SecurityEvent.objects.filter(event_type="verification.fraud_reported").count() == 1


def test_replayed_link_is_gone_and_changes_nothing(client, technician, person, outbox, capture):
    verification, challenge, token = push_sent(technician, person, capture)
    client.post(push_url(token), {"choice": str(challenge.match_number)})
    before = snapshot()
    response = client.get(push_url(token))
    assert response.status_code == 410
    assert "already been answered or has expired" in response.content.decode()
    for choice in ("deny", "fraud", str(challenge.match_number)):
        assert client.post(push_url(token), {"choice": choice}).status_code == 410
    assert snapshot() == before
    rejected = SecurityEvent.objects.filter(event_type="verification.link_rejected")
    assert rejected.count() == 3  # the POSTs, not the GET
    assert all(token not in repr(event.details) for event in rejected)


def test_expired_link_is_gone(client, technician, person, outbox, capture):
    verification, challenge, token = push_sent(technician, person, capture)
    before = snapshot()
    with time_machine.travel(timezone.now() + timedelta(seconds=121)):
        assert client.get(push_url(token)).status_code == 410
        response = client.post(push_url(token), {"choice": str(challenge.match_number)})
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert snapshot() == before


def test_push_cannot_verify_a_request_that_timed_out(client, technician, person, outbox, capture):
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.PASSWORD_RESET, ticket_reference="INC-1001"
    )
    start = verification.created_at
    with time_machine.travel(start + timedelta(minutes=29, seconds=30), tick=False):
        with capture(execute=True):
            challenge = services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
        challenge.refresh_from_db()
        token = link_token_in(last_text(person.phone))
    with time_machine.travel(start + timedelta(minutes=30, seconds=10), tick=False):
        assert client.get(push_url(token)).status_code == 410
        response = client.post(push_url(token), {"choice": str(challenge.match_number)})
    assert response.status_code == 410
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.PENDING and verification.verified_at is None


def test_tampered_link_is_not_found_and_changes_nothing(client, technician, person, outbox, capture):
    verification, challenge, token = push_sent(technician, person, capture)
    before = snapshot()
    for bad in (tampered(token), "not-a-token", token.split(":")[0]):
        assert client.get(push_url(bad)).status_code == 404
        response = client.post(push_url(bad), {"choice": str(challenge.match_number)})
        assert response.status_code == 404
        assert "This link is not valid" in response.content.decode()
    assert snapshot() == before
    assert SecurityEvent.objects.filter(event_type="verification.link_rejected").count() == 3


def test_an_enrolment_link_does_not_open_the_approval_page(client, technician, person, outbox, capture):
    _, _, token = enrollment_sent(technician, person, capture)
    assert client.get(push_url(token)).status_code == 404


@pytest.mark.parametrize("choice", ["", "100", "0", "approve", "DENY", " 42"])
def test_a_choice_not_offered_is_refused_and_changes_nothing(client, technician, person, outbox, capture, choice):
    verification, challenge, token = push_sent(technician, person, capture)
    before = snapshot()
    response = client.post(push_url(token), {"choice": choice})
    assert response.status_code == 400
    assert "Pick one of the numbers shown" in response.content.decode()
    assert snapshot() == before


def test_post_passes_csrf_with_the_origin_a_no_referrer_page_sends(technician, person, outbox, capture):
    """Browsers send ``Origin: null`` from a no-referrer page; the cookie and form token still count."""
    csrf_client = Client(enforce_csrf_checks=True)
    verification, challenge, token = push_sent(technician, person, capture)
    page = csrf_client.get(push_url(token))
    form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    assert django_settings.CSRF_COOKIE_NAME in page.cookies
    before = snapshot()
    for refused in ({"HTTP_ORIGIN": "null"}, {"HTTP_ORIGIN": "https://evil.example", "csrf": form_token}):
        data = {"choice": "deny", "csrfmiddlewaretoken": refused.pop("csrf", "")}
        response = csrf_client.post(push_url(token), data, **refused)
        assert response.status_code == 403
        assert "open the link again" in response.content.decode()
    assert snapshot() == before
    data = {"choice": str(challenge.match_number), "csrfmiddlewaretoken": form_token}
    response = csrf_client.post(push_url(token), data, HTTP_ORIGIN="null")
    assert response.status_code == 200
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED


# --- Authenticator enrolment -------------------------------------------------------------


def test_enrolment_page_shows_a_qr_code_and_the_key_in_groups_of_four(client, technician, person, outbox, capture):
    authenticator, raw_key, token = enrollment_sent(technician, person, capture)
    before = snapshot()
    response = client.get(enroll_url(token))
    assert response.status_code == 200
    assert client.get(enroll_url(token)).content.count(b"<svg") == 1
    assert snapshot() == before
    html = response.content.decode()
    assert re.search(r"<svg[^>]*><path ", html)
    key = base64.b32encode(raw_key).decode().rstrip("=")
    groups = re.search(r'class="secret"><code>([A-Z2-7 ]+)</code>', html).group(1).split(" ")
    assert "".join(groups) == key and {len(g) for g in groups[:-1]} == {4}
    assert 'name="code"' in html and 'href="otpauth://totp/' in html
    for secret in (person.phone, person.phone.lstrip("+"), person.email, person.employee_id, token):
        assert secret not in html
    outside = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in outside and "https://" not in outside  # the QR code needs no request


def test_enrolment_confirms_with_a_real_code(client, technician, person, outbox, capture):
    authenticator, raw_key, token = enrollment_sent(technician, person, capture)
    response = client.post(enroll_url(token), {"code": totp_code(raw_key)})
    assert response.status_code == 200
    assert "Your authenticator app is set up" in response.content.decode()
    authenticator.refresh_from_db()
    assert authenticator.is_confirmed and crypto.unseal(authenticator.sealed_key) == raw_key
    assert not authenticator.pending_sealed_key
    assert client.get(enroll_url(token)).status_code == 410


def test_enrolment_code_may_be_typed_with_a_space(client, technician, person, outbox, capture):
    authenticator, raw_key, token = enrollment_sent(technician, person, capture)
    code = totp_code(raw_key)
    assert client.post(enroll_url(token), {"code": f" {code[:3]} {code[3:]} "}).status_code == 200
    authenticator.refresh_from_db()
    assert authenticator.is_confirmed


def test_wrong_enrolment_code_counts_down_the_attempts(client, technician, person, outbox, capture):
    authenticator, raw_key, token = enrollment_sent(technician, person, capture)
    for left in (4, 3):
        response = client.post(enroll_url(token), {"code": wrong_code(raw_key)})
        assert response.status_code == 400
        assert f"That code is not right. {left} attempts left." in response.content.decode()
        assert 'name="code"' in response.content.decode()
    authenticator.refresh_from_db()
    assert authenticator.enrollment_attempts == 2 and not authenticator.is_confirmed


def test_five_wrong_enrolment_codes_kill_the_link(client, technician, person, outbox, capture):
    authenticator, raw_key, token = enrollment_sent(technician, person, capture)
    for _ in range(4):
        client.post(enroll_url(token), {"code": wrong_code(raw_key)})
    response = client.post(enroll_url(token), {"code": wrong_code(raw_key)})
    assert response.status_code == 410
    assert "last attempt" in response.content.decode()
    response = client.get(enroll_url(token))
    assert response.status_code == 410 and "Too many wrong codes" in response.content.decode()
    assert client.post(enroll_url(token), {"code": totp_code(raw_key)}).status_code == 410
    authenticator.refresh_from_db()
    assert not authenticator.is_confirmed and authenticator.enrollment_attempts == 5


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "12-34-56"])
def test_malformed_enrolment_code_is_not_an_attempt(client, technician, person, outbox, capture, code):
    authenticator, raw_key, token = enrollment_sent(technician, person, capture)
    response = client.post(enroll_url(token), {"code": code})
    assert response.status_code == 400
    assert "Enter the 6-digit code" in response.content.decode()
    authenticator.refresh_from_db()
    assert authenticator.enrollment_attempts == 0


def test_expired_enrolment_link_is_gone(client, technician, person, outbox, capture):
    authenticator, raw_key, token = enrollment_sent(technician, person, capture)
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert client.get(enroll_url(token)).status_code == 410
        assert client.post(enroll_url(token), {"code": totp_code(raw_key)}).status_code == 410
    authenticator.refresh_from_db()
    assert not authenticator.is_confirmed and authenticator.enrollment_attempts == 0


def test_tampered_enrolment_link_is_not_found(client, technician, person, outbox, capture):
    authenticator, raw_key, token = enrollment_sent(technician, person, capture)
    before = snapshot()
    assert client.get(enroll_url(tampered(token))).status_code == 404
    assert client.post(enroll_url(tampered(token)), {"code": totp_code(raw_key)}).status_code == 404
    assert snapshot() == before
    assert SecurityEvent.objects.filter(event_type="verification.link_rejected").count() == 1


# --- What every end-user page has in common ----------------------------------------------------


@pytest.fixture
def end_user_responses(client, technician, person, outbox, capture):
    _, _, push_token = push_sent(technician, person, capture)
    _, _, enroll_token = enrollment_sent(technician, person, capture)
    return {
        "push": client.get(push_url(push_token)),
        "push refused": client.post(push_url(push_token), {"choice": "nope"}),
        "push bad link": client.post(push_url("forged"), {"choice": "deny"}),
        "enrolment": client.get(enroll_url(enroll_token)),
        "enrolment error": client.post(enroll_url(enroll_token), {"code": "x"}),
        "enrolment bad link": client.get(enroll_url("forged")),
        "push result": client.post(push_url(push_token), {"choice": "deny"}),
    }


def test_every_end_user_page_is_private(end_user_responses):
    for name, response in end_user_responses.items():
        assert "no-store" in response["Cache-Control"], name
        assert response["Referrer-Policy"] == "no-referrer", name
        assert response["X-Robots-Tag"] == "noindex", name
        html = response.content.decode()
        assert '<meta name="robots" content="noindex">' in html, name
        assert "css/end_user.css" in html and "css/portal.css" not in html, name
        assert "<script" not in html, name
        assert 'class="nav"' not in html, name


def test_no_end_user_page_links_anywhere_with_the_token(end_user_responses):
    for name, response in end_user_responses.items():
        html = response.content.decode()
        for target in re.findall(r'(?:href|action|src)="([^"]*)"', html):
            assert "/r/" not in target and "/e/" not in target, (name, target)


def test_end_user_stylesheet_has_no_fixed_width_over_360px():
    css = (Path(django_settings.BASE_DIR) / "static" / "css" / "end_user.css").read_text()
    css = re.sub(r"@media[^{]*", "", css)  # a media query's min-width is a breakpoint, not a width
    for prop, value, unit in re.findall(r"(?<![\w-])((?:min-)?width|flex-basis)\s*:\s*([\d.]+)(px|rem|em)", css):
        pixels = float(value) * (1 if unit == "px" else 16)
        assert pixels <= 360, f"{prop}: {value}{unit}"
    assert "grid-template-columns:repeat(3, minmax(0, 1fr))" in css  # the three numbers share the width


# --- Properties: arbitrary input is a 4xx with a message, never a 500, never a change ---------------


def assert_clear_refusal(response):
    assert 400 <= response.status_code < 500, response.status_code
    assert re.search(r"<h1[^>]*>[^<]+</h1>", response.content.decode())


@given(data=st.data())
@PROPERTY
def test_arbitrary_push_links_and_answers_change_nothing(client, technician, person, outbox, capture, data):
    if not Challenge.objects.exists():  # the fixtures are set up once for every example
        push_sent(technician, person, capture)
    token = link_token_in(last_text(person.phone))
    bad_token = data.draw(st.one_of(ANY_TOKEN, st.builds(lambda i: token[:i], st.integers(0, len(token) - 1))))
    assume(bad_token and bad_token != token)
    form = data.draw(st.dictionaries(st.sampled_from(["choice", "code", "x"]), st.text(max_size=40), max_size=3))
    before = snapshot()
    assert_clear_refusal(client.get(push_url(bad_token)))
    assert_clear_refusal(client.post(push_url(bad_token), form))
    assert snapshot() == before


@given(choice=st.text(max_size=40))
@PROPERTY
def test_arbitrary_choices_on_a_live_push_link_change_nothing(client, technician, person, outbox, capture, choice):
    if not Challenge.objects.exists():
        push_sent(technician, person, capture)
    challenge = Challenge.objects.get()
    assume(choice not in {"deny", "fraud", *map(str, challenge.match_choices)})
    before = snapshot()
    response = client.post(push_url(link_token_in(last_text(person.phone))), {"choice": choice})
    assert response.status_code == 400
    assert_clear_refusal(response)
    assert snapshot() == before


@given(data=st.data())
@PROPERTY
def test_arbitrary_enrolment_links_and_codes_change_nothing(client, technician, person, outbox, capture, data):
    if not PersonAuthenticator.objects.exists():
        enrollment_sent(technician, person, capture)
    token = link_token_in(last_text(person.phone))
    code = data.draw(st.text(max_size=20))
    assume(sum(c in "0123456789" for c in code) != 6)  # cannot be a well-formed code, so never an attempt
    bad_token = data.draw(ANY_TOKEN)
    assume(bad_token != token)
    before = snapshot()
    assert_clear_refusal(client.get(enroll_url(bad_token)))
    assert_clear_refusal(client.post(enroll_url(bad_token), {"code": code}))
    assert_clear_refusal(client.post(enroll_url(token), {"code": code}))
    assert snapshot() == before
