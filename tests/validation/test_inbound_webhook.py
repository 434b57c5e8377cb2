"""Twilio's inbound-message webhook: replies to SMS-reply challenges, signed with twilio's
RequestValidator against PUBLIC_BASE_URL, answered with TwiML, idempotent per MessageSid."""

import logging
from urllib.parse import urlencode

import pytest
from django.core import mail
from django.core.cache import cache
from django.db import transaction
from django.urls import reverse
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.fakes.twilio_api import twilio_signature
from tests.validation.hardening import events_of, new_sid, other_number, reply_challenge, snapshot
from tests.validation.helpers import twilio_poster
from validation.models import Challenge, InboundMessage, PersonVerificationState, VerificationRequest
from validation.services import replies
from validation.views.webhooks import REJECTIONS_RECORDED_PER_MINUTE

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


@pytest.fixture
def challenge(fake_twilio, technician, person, capture):
    return reply_challenge(technician, person, capture)


@pytest.fixture
def inbound_url(settings):
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("validation:twilio_inbound")


@pytest.fixture
def post_inbound(client, settings, inbound_url):
    """POST an inbound message the way Twilio does; ``signature`` as in ``post_status``."""
    return twilio_poster(client, settings, url_name="validation:twilio_inbound", public_url=inbound_url)


def message(from_number, body, sid=None, **extra):
    """The fields Twilio posts to a number's messaging webhook."""
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid or new_sid(),
        "NumMedia": "0",
        "From": from_number,
        "To": "+15005550006",
        "Body": body,
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        **extra,
        "MessageSid": sid or extra.get("MessageSid") or new_sid(),
    }


def test_a_signed_yes_verifies_and_answers_with_twiml(challenge, person, post_inbound):
    response = post_inbound(message(person.phone, f" yes {challenge.match_number} "))
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    assert response.content.decode() == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        + replies.reply_text(replies.APPROVED)
        + "</Message></Response>"
    )
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.APPROVED
    assert VerificationRequest.objects.get(pk=challenge.request_id).status == VerificationRequest.Status.VERIFIED


def test_a_signed_no_locks_and_alerts(challenge, person, post_inbound, capture, org):
    from accounts.models import Role
    from tests.accounts.factories import UserFactory

    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org])
    with capture(execute=True):
        response = post_inbound(message(person.phone, "NO"))
    assert response.status_code == 200 and b"Thank you for reporting this." in response.content
    assert PersonVerificationState.objects.get(person=person).locked_at is not None
    assert [m.to for m in mail.outbox] == [[admin.email]]
    [report] = events_of("verification.fraud_reported")
    assert report.source_ip == "127.0.0.1"


def test_a_repeated_message_sid_changes_nothing_and_sends_nothing_back(challenge, person, post_inbound):
    sid = new_sid()
    assert b"Message" in post_inbound(message(person.phone, f"YES {challenge.match_number}", sid)).content
    before = snapshot()
    response = post_inbound(message(person.phone, "NO", sid))
    assert response.status_code == 200 and response.content == EMPTY_TWIML
    assert snapshot() == before


def test_a_reply_from_another_number_gets_no_answer_and_changes_nothing(challenge, post_inbound):
    before = snapshot()
    response = post_inbound(message("+12025550999", f"YES {challenge.match_number}"))
    assert response.status_code == 200 and response.content == EMPTY_TWIML
    assert snapshot() == before


def test_a_reply_that_is_not_understood_gets_the_help_text(challenge, person, post_inbound):
    before = snapshot()
    response = post_inbound(message(person.phone, "what is this <b>?</b> & why"))
    assert b"Reply YES and the 2-digit number" in response.content
    assert snapshot() == before


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param({"signature": None}, id="missing"),
        pytest.param({"signature": ""}, id="empty"),
        pytest.param({"signature": "bm90IGEgc2lnbmF0dXJl"}, id="garbage"),
        pytest.param({"token": "another-auth-token"}, id="other-token"),
        pytest.param({"signed_url": "http://testserver/webhooks/twilio/inbound/"}, id="host-header-url"),
        pytest.param({"signed_url": "http://127.0.0.1:8000/webhooks/twilio/status/"}, id="other-webhook"),
    ],
)
def test_a_bad_or_missing_signature_is_refused_and_recorded(challenge, person, post_inbound, signature, caplog):
    caplog.set_level(logging.DEBUG)
    before = snapshot()
    response = post_inbound(message(person.phone, f"YES {challenge.match_number}"), **signature)
    assert response.status_code == 403
    assert response.content == b"Invalid or missing Twilio signature."
    assert snapshot() == before
    assert not InboundMessage.objects.exists()
    [rejected] = events_of("verification.webhook_rejected")
    assert rejected.details == {
        "webhook": "twilio_inbound",
        "reason": "missing signature" if not signature.get("signature", "x") else "invalid signature",
    }
    assert f"YES {challenge.match_number}" not in caplog.text


def test_a_signature_over_another_body_is_refused(challenge, person, client, settings, inbound_url):
    signed = message(person.phone, "YES 00", sid=new_sid())
    tampered = {**signed, "Body": f"YES {challenge.match_number}"}
    before = snapshot()
    response = client.post(
        reverse("validation:twilio_inbound"),
        data=urlencode(tampered),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": twilio_signature(inbound_url, signed, settings.TWILIO_AUTH_TOKEN)},
    )
    assert response.status_code == 403
    assert snapshot() == before


def test_the_signature_covers_the_public_url(challenge, person, post_inbound, settings):
    settings.PUBLIC_BASE_URL = "https://portal.example.com"
    form = message(person.phone, f"YES {challenge.match_number}")
    assert post_inbound(form, signed_url="http://testserver/webhooks/twilio/inbound/").status_code == 403
    assert post_inbound(form, signed_url="https://portal.example.com/webhooks/twilio/inbound/").status_code == 200
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.APPROVED


def test_a_flood_of_bad_signatures_records_a_bounded_number_of_events(challenge, person, post_inbound):
    for _ in range(REJECTIONS_RECORDED_PER_MINUTE + 5):
        assert post_inbound(message(person.phone, "NO"), signature="forged").status_code == 403
    assert len(events_of("verification.webhook_rejected")) == REJECTIONS_RECORDED_PER_MINUTE
    assert PersonVerificationState.objects.filter(locked_at__isnull=False).count() == 0


@pytest.mark.parametrize(
    ("change", "message_text"),
    [
        ({"MessageSid": ""}, "MessageSid: missing."),
        ({"MessageSid": "SM" + "A" * 32}, "MessageSid: expected SM or MM followed by 32 lowercase hexadecimal digits."),
        ({"MessageSid": "XX" + "a" * 32}, "MessageSid: expected SM or MM followed by 32 lowercase hexadecimal digits."),
        ({"From": ""}, "From: missing."),
    ],
)
def test_signed_messages_with_bad_fields_are_a_400(challenge, person, post_inbound, change, message_text):
    form = {**message(person.phone, f"YES {challenge.match_number}"), **change}
    before = snapshot()
    response = post_inbound(form)
    assert response.status_code == 400 and response.content.decode() == message_text
    assert snapshot() == before


def test_a_field_given_twice_is_a_400(challenge, person, post_inbound):
    pairs = [*message(person.phone, "NO").items(), ("Body", f"YES {challenge.match_number}")]
    before = snapshot()
    response = post_inbound(pairs)
    assert response.status_code == 400 and response.content == b"Body: given more than once."
    assert snapshot() == before


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_post_is_allowed(client, db, method):
    assert getattr(client, method)(reverse("validation:twilio_inbound")).status_code == 405


def test_the_webhook_does_not_exist_in_outbox_mode(challenge, person, post_inbound, settings):
    settings.SMS_DEV_OUTBOX = True
    before = snapshot()
    assert post_inbound(message(person.phone, "NO")).status_code == 404
    assert snapshot() == before


# --- Property: any correctly signed body: never a 5xx; only a valid reply changes anything -------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
ANY_PAIR = st.tuples(st.sampled_from(["MessageSid", "From", "Body", "To", "NumMedia", "AccountSid"]) | TEXT, TEXT)


def mostly(draw, likely, other):
    return draw(likely) if draw(st.integers(0, 3)) else draw(other)


@st.composite
def inbound_forms(draw, phone, number, seen_sid):
    """Usually shaped like Twilio's inbound message with fields a little off; sometimes arbitrary."""
    if not draw(st.integers(0, 4)):
        return draw(st.lists(ANY_PAIR, max_size=8))
    sid = mostly(draw, st.just(new_sid()), st.sampled_from([seen_sid, "SM" + "0" * 31, "MM" + "a" * 32]) | TEXT)
    sender = mostly(
        draw, st.just(phone), st.sampled_from(["+12025550999", phone[1:], phone + "1", "whatsapp:" + phone]) | TEXT
    )
    body = mostly(
        draw,
        st.sampled_from([f"YES {number}", f" yes{number} ", "NO", f"no {number}", f"YES {other_number(number)}"]),
        st.sampled_from(["YES", "STOP", "YES 100", f"YES {number}!", ""]) | TEXT,
    )
    pairs = [("MessageSid", sid), ("From", sender), ("Body", body), ("AccountSid", "AC" + "0" * 32)]
    pairs += draw(st.lists(ANY_PAIR, max_size=2))
    if not draw(st.integers(0, 4)):
        del pairs[draw(st.integers(0, len(pairs) - 1))]
    return draw(st.permutations(pairs))


def expected_effect(pairs, *, phone, number, seen_sid):
    """What a form should do: None (nothing), "approved", "wrong_number" or "fraud"."""
    values = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    sids, senders, bodies = values.get("MessageSid", []), values.get("From", []), values.get("Body", [""])
    if len(sids) != 1 or len(senders) != 1 or len(bodies) != 1 or sids[0] == seen_sid:
        return None
    if not replies.INBOUND_SID_PATTERN.fullmatch(sids[0]) or senders[0] != phone:
        return None
    reply = replies.reply_parse(bodies[0])
    if reply is None:
        return None
    if not reply.yes:
        return "fraud"
    return "approved" if reply.number == number else "wrong_number"


@hypothesis_settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_signed_inbound_body_never_500s_and_changes_only_what_a_valid_reply_may(
    challenge, person, post_inbound, data
):
    seen_sid = new_sid()
    pairs = data.draw(inbound_forms(person.phone, challenge.match_number, seen_sid), label="form")
    cache.clear()
    with transaction.atomic():
        InboundMessage.objects.create(message_sid=seen_sid, outcome=replies.APPROVED)
        before = snapshot()
        response = post_inbound(pairs)
        after = snapshot()
        status = Challenge.objects.get(pk=challenge.pk).status
        locked = PersonVerificationState.objects.filter(person=person, locked_at__isnull=False).exists()
        transaction.set_rollback(True)

    assert response.status_code in (200, 400), response.status_code
    effect = expected_effect(pairs, phone=person.phone, number=challenge.match_number, seen_sid=seen_sid)
    event(f"HTTP {response.status_code}, effect {effect}")
    if response.status_code == 400:
        assert response["Content-Type"].startswith("text/plain") and response.content.strip()
    else:
        assert response["Content-Type"] == "text/xml" and response.content.startswith(b"<?xml")
    if effect is None:
        assert after == before
    else:
        assert response.status_code == 200
        assert (
            status
            == {
                "approved": Challenge.Status.APPROVED,
                "wrong_number": Challenge.Status.FAILED,
                "fraud": Challenge.Status.DENIED,
            }[effect]
        )
        assert locked == (effect == "fraud")
