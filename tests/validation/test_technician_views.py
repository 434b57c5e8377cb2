"""The technician's pages: start a verification for a person, watch it live, challenge the
caller, cancel. Scoped to assigned organisations; only the starter may act."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from tests.accounts.factories import PASSWORD, OrganizationFactory, PersonFactory, UserFactory
from tests.helpers import sign_in
from tests.validation.factories import AuthenticatorFactory, technician_for
from tests.validation.helpers import code_in, last_text, link_token_in, totp_code
from validation import services
from validation.models import (
    Action,
    Challenge,
    Method,
    OutboxMessage,
    PersonAuthenticator,
    PersonVerificationState,
    VerificationRequest,
)

CACHE_SESSIONS = "django.contrib.sessions.backends.cache"


@pytest.fixture
def tech(org):
    return technician_for(org, mfa=True)


@pytest.fixture
def tech_client(client, tech):
    client.force_login(tech)
    return client


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def start(technician, person, action=Action.OTHER):
    return services.verification_request_create(
        actor=technician, person=person, action=action, ticket_reference="INC-1001"
    )


def detail(client, verification):
    return client.get(reverse("validation:detail", args=[verification.pk]))


def text(response) -> str:
    """The page's visible text, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split()).replace(" :", ":").replace(" .", ".")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- Start -------------------------------------------------------------------------------


def test_person_page_links_to_verify_caller(tech_client, person):
    response = tech_client.get(reverse("person_detail", args=[person.pk]))
    assert reverse("validation:start", args=[person.pk]).encode() in response.content
    assert b"Verify caller" in response.content


def test_start_page_lists_methods_with_reasons_and_masks_contacts(tech_client, person):
    response = tech_client.get(reverse("validation:start", args=[person.pk]))
    assert response.status_code == 200
    page = text(response)
    assert "SMS code: can verify" in page and "Number-matched approval link strong: can verify" in page
    assert "Authenticator app code strong: cannot verify: No authenticator enrolled" in page
    assert person.phone not in page and person.email not in page
    assert person.masked_phone in page and f"@{person.email.split('@')[1]}" in page
    assert "Send authenticator enrolment link" in page
    assert "Password reset" in page and "1 independent method from" in page


def test_start_page_without_phone_cannot_send_and_says_why(tech_client, org):
    person = PersonFactory(organization=org, phone="")
    page = text(tech_client.get(reverse("validation:start", args=[person.pk])))
    assert "SMS code: cannot verify: No phone of record" in page
    assert "Send authenticator enrolment link" not in page
    assert "no: not enough methods can serve" in page


def test_start_page_shows_a_lock_and_no_start_form(tech_client, person):
    PersonVerificationState.objects.create(person=person, locked_at=timezone.now(), locked_reason="Fraud reported")
    page = text(tech_client.get(reverse("validation:start", args=[person.pk])))
    assert "Stop: verification is locked for this person. Fraud reported" in page
    assert "escalate to an org admin" in page
    assert 'name="ticket_reference"' not in page


def test_creating_a_request_redirects_to_its_live_page(tech_client, tech, person):
    response = tech_client.post(
        reverse("validation:start", args=[person.pk]), {"action": "password_reset", "ticket_reference": "INC-42"}
    )
    verification = VerificationRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("validation:detail", args=[verification.pk])
    assert (verification.technician, verification.person, verification.action) == (tech, person, "password_reset")
    page = tech_client.get(response["Location"])
    assert "Not verified yet" in text(page) and "Policy not met. Still missing: 1 more method from:" in text(page)
    assert b'hx-trigger="every 1s"' in page.content


@pytest.mark.parametrize(
    "data",
    [
        {"action": "", "ticket_reference": "INC-1"},
        {"action": "format_disk", "ticket_reference": "INC-1"},
        {"action": "password_reset", "ticket_reference": ""},
        {"action": "password_reset", "ticket_reference": "<script>"},
        {"action": "password_reset", "ticket_reference": "INC 1"},
        {"action": "password_reset", "ticket_reference": "x" * 65},
        {},
    ],
)
def test_bad_action_or_ticket_is_a_form_error_and_creates_nothing(tech_client, person, data):
    response = tech_client.post(reverse("validation:start", args=[person.pk]), data)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert b'class="errorlist' in response.content
    assert not VerificationRequest.objects.exists()


def test_service_refusal_is_shown_on_the_form(tech_client, person):
    PersonVerificationState.objects.create(person=person, locked_at=timezone.now(), locked_reason="Too many failures")
    response = tech_client.post(
        reverse("validation:start", args=[person.pk]), {"action": "other", "ticket_reference": "INC-1"}
    )
    assert response.status_code == 200
    assert "Too many failures" in " ".join(response.context["form"].non_field_errors())
    assert not VerificationRequest.objects.exists()


# --- Scoping -----------------------------------------------------------------------------


@pytest.fixture
def foreign(db):
    """Another organisation's person, with a pending request that has an open challenge."""
    org = OrganizationFactory()
    person = PersonFactory(organization=org)
    AuthenticatorFactory(person=person)
    outsider = technician_for(org, mfa=True)
    verification = start(outsider, person)
    services.challenge_start(actor=outsider, verification=verification, method=Method.SMS_CODE)
    verification.refresh_from_db()
    return verification


def _routes(verification):
    pk = verification.pk
    challenge = verification.challenges.get()
    person = verification.person_id
    return [
        ("get", reverse("validation:start", args=[person]), {}),
        ("post", reverse("validation:start", args=[person]), {"action": "other", "ticket_reference": "INC-1"}),
        ("get", reverse("validation:detail", args=[pk]), {}),
        ("get", reverse("validation:status", args=[pk]), {"version": "0"}),
        ("get", reverse("validation:status", args=[pk]), {"version": str(verification.version)}),
        ("post", reverse("validation:send", args=[pk]), {"method": "push"}),
        ("post", reverse("validation:totp_check", args=[pk]), {"code": "123456"}),
        ("post", reverse("validation:code_check", args=[pk, challenge.pk]), {"code": "123456"}),
        ("post", reverse("validation:cancel", args=[pk]), {}),
        ("post", reverse("validation:enrollment_start", args=[person]), {}),
    ]


def test_another_organisations_person_and_request_are_404_on_every_route(tech_client, foreign):
    for method, url, data in _routes(foreign):
        response = getattr(tech_client, method)(url, data)
        assert response.status_code == 404, url
    before = foreign.version
    foreign.refresh_from_db()
    assert foreign.status == VerificationRequest.Status.PENDING and foreign.version == before
    assert VerificationRequest.objects.count() == 1 and Challenge.objects.count() == 1
    assert Challenge.objects.get().attempts == 0
    assert PersonAuthenticator.objects.get().pending_sealed_key == ""


def test_own_challenge_under_another_request_is_404(tech_client, tech, person, foreign):
    mine = start(tech, person)
    other_challenge = foreign.challenges.get()
    url = reverse("validation:code_check", args=[mine.pk, other_challenge.pk])
    assert tech_client.post(url, {"code": "123456"}).status_code == 404
    assert Challenge.objects.get(pk=other_challenge.pk).attempts == 0


def test_anonymous_visitor_is_sent_to_sign_in(client, foreign):
    for method, url, data in _routes(foreign):
        response = getattr(client, method)(url, data)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_superuser_sees_any_request(client, foreign):
    client.force_login(UserFactory(is_superuser=True, mfa=True))
    response = detail(client, foreign)
    assert response.status_code == 200 and b"watching read-only" in response.content


# --- A colleague watches -----------------------------------------------------------------


def test_colleague_in_the_organisation_sees_but_cannot_act(client, org, tech, person, outbox, capture):
    verification = start(tech, person)
    colleague = technician_for(org, mfa=True)
    client.force_login(colleague)
    page = text(detail(client, verification))
    assert "Only they can challenge the caller or cancel; you are watching read-only" in page
    assert "Send SMS code" not in page and "Cancel verification" not in page

    with capture(execute=True):
        response = client.post(reverse("validation:send", args=[verification.pk]), {"method": "sms_code"}, follow=True)
    assert "Only the technician who started this verification can act on it." in messages_of(response)
    response = client.post(reverse("validation:cancel", args=[verification.pk]), follow=True)
    assert "Only the technician who started this verification can act on it." in messages_of(response)
    response = client.post(reverse("validation:totp_check", args=[verification.pk]), {"code": "123456"}, follow=True)
    assert "Only the technician who started this verification can act on it." in messages_of(response)
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.PENDING
    assert not Challenge.objects.exists() and not OutboxMessage.objects.exists()


# --- Challenging the caller --------------------------------------------------------------


def test_texted_code_verifies_and_the_page_says_so(client, org, person, outbox, capture):
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org], mfa=True)
    sign_in(client, technician, password=PASSWORD, secret=technician.totp_secret)
    response = client.post(
        reverse("validation:start", args=[person.pk]), {"action": "other", "ticket_reference": "INC-7"}
    )
    verification = VerificationRequest.objects.get()
    with capture(execute=True):
        client.post(reverse("validation:send", args=[verification.pk]), {"method": "sms_code"})
    challenge = Challenge.objects.get()
    assert challenge.status == Challenge.Status.SENT
    page = client.get(response["Location"]).content.decode()
    assert "SMS code" in page and person.masked_phone in page and "Check code" in page
    assert f'data-expires="{challenge.expires_at.isoformat()}"' in page and "Attempts left" in page

    code = code_in(last_text(person.phone))
    response = client.post(
        reverse("validation:code_check", args=[verification.pk, challenge.pk]), {"code": code}, follow=True
    )
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED
    page = text(response)
    until = timezone.localtime(verification.expires_at).strftime("%H:%M")
    assert f"Verified until {until} UTC — covers one action: Other for {person.full_name}." in page
    assert "Policy met by: SMS code." in page
    assert b"hx-trigger" not in response.content


def test_wrong_code_is_counted_and_a_malformed_one_is_not(tech_client, tech, person, outbox, capture):
    verification = start(tech, person)
    with capture(execute=True):
        challenge = services.challenge_start(actor=tech, verification=verification, method=Method.SMS_CODE)
    url = reverse("validation:code_check", args=[verification.pk, challenge.pk])
    right = code_in(last_text(person.phone))
    wrong = "000000" if right != "000000" else "111111"

    response = tech_client.post(url, {"code": "12ab"}, follow=True)
    assert "Enter the 6 or 8 digits the caller reads out." in messages_of(response)
    assert Challenge.objects.get().attempts == 0

    response = tech_client.post(url, {"code": wrong}, follow=True)
    assert "Wrong code. The attempt was counted." in messages_of(response)
    assert Challenge.objects.get().attempts == 1
    assert re.search(r"Sent</span>\s*</td>\s*<td class=\"num\">4</td>", response.content.decode())


def test_open_push_shows_the_match_number_in_big_type(tech_client, tech, person, outbox, capture):
    verification = start(tech, person, Action.PASSWORD_RESET)
    with capture(execute=True):
        response = tech_client.post(reverse("validation:send", args=[verification.pk]), {"method": "push"})
    assert response.status_code == 302
    challenge = Challenge.objects.get()
    page = detail(tech_client, verification).content.decode()
    assert f'Ask the caller to pick <strong class="match-number">{challenge.match_number}</strong>' in page
    assert "Waiting for an answer until" in page  # no second push while one waits


def test_fraud_report_shows_a_stop_message(tech_client, tech, person, outbox, capture):
    verification = start(tech, person, Action.PASSWORD_RESET)
    with capture(execute=True):
        services.challenge_start(actor=tech, verification=verification, method=Method.PUSH)
    services.push_respond(token=link_token_in(last_text(person.phone)), choice="fraud")
    response = detail(tech_client, verification)
    page = text(response)
    assert "Stop: verification is locked for this person." in page
    assert "The person reported they did not request this" in page
    assert "Do not perform any action; escalate to an org admin." in page
    assert b"hx-get" not in response.content and "Send Number-matched" not in page


def test_totp_code_verifies(tech_client, tech, person):
    authenticator = AuthenticatorFactory(person=person)
    verification = start(tech, person, Action.PASSWORD_RESET)
    assert b"Check authenticator code" in detail(tech_client, verification).content
    response = tech_client.post(
        reverse("validation:totp_check", args=[verification.pk]),
        {"code": totp_code(authenticator.raw_key)},
        follow=True,
    )
    assert "Code accepted." in messages_of(response)
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED


def test_totp_without_enrolment_says_why(tech_client, tech, person):
    verification = start(tech, person, Action.PASSWORD_RESET)
    assert b"Authenticator app code: No authenticator enrolled" in detail(tech_client, verification).content
    response = tech_client.post(
        reverse("validation:totp_check", args=[verification.pk]), {"code": "123456"}, follow=True
    )
    assert any("No authenticator enrolled" in m for m in messages_of(response))
    assert not Challenge.objects.exists()


@pytest.mark.parametrize("method", ["totp", "carrier_pigeon", ""])
def test_sending_a_method_that_sends_nothing_changes_nothing(tech_client, tech, person, method):
    verification = start(tech, person)
    response = tech_client.post(reverse("validation:send", args=[verification.pk]), {"method": method}, follow=True)
    assert response.status_code == 200
    assert "Choose a method that sends a message to the person." in messages_of(response)
    assert not Challenge.objects.exists()


def test_sms_code_not_allowed_by_policy_is_refused(tech_client, tech, person):
    verification = start(tech, person, Action.PASSWORD_RESET)
    assert b"Send SMS code" not in detail(tech_client, verification).content
    response = tech_client.post(reverse("validation:send", args=[verification.pk]), {"method": "sms_code"}, follow=True)
    assert "The organisation's policy does not accept this method for this action." in messages_of(response)
    assert not Challenge.objects.exists()


def test_cancel_ends_the_request_and_stops_polling(tech_client, tech, person):
    verification = start(tech, person)
    response = tech_client.post(reverse("validation:cancel", args=[verification.pk]), follow=True)
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.CANCELLED
    assert "Stop: this verification was cancelled." in text(response) and b"hx-get" not in response.content
    response = tech_client.post(reverse("validation:cancel", args=[verification.pk]), follow=True)
    assert "Only a pending verification can be cancelled." in messages_of(response)


def test_get_is_not_allowed_on_actions(tech_client, tech, person):
    verification = start(tech, person)
    assert tech_client.get(reverse("validation:cancel", args=[verification.pk])).status_code == 405
    assert tech_client.get(reverse("validation:send", args=[verification.pk])).status_code == 405
    assert tech_client.get(reverse("validation:enrollment_start", args=[person.pk])).status_code == 405


# --- Enrolment ---------------------------------------------------------------------------


def test_enrolment_link_is_texted_to_the_phone_of_record(tech_client, person, outbox, capture):
    with capture(execute=True):
        response = tech_client.post(reverse("validation:enrollment_start", args=[person.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("validation:start", args=[person.pk])
    assert any("enrolment link is on its way" in m for m in messages_of(response))
    assert "/e/" in last_text(person.phone)
    assert b"enrolment link sent, not completed yet" in response.content


def test_enrolment_without_phone_is_refused(tech_client, org):
    person = PersonFactory(organization=org, phone="")
    response = tech_client.post(reverse("validation:enrollment_start", args=[person.pk]), follow=True)
    assert "Cannot send an enrolment link: No phone of record." in messages_of(response)
    assert not PersonAuthenticator.objects.exists()


# --- Live status -------------------------------------------------------------------------


def test_detail_page_loads_vendored_htmx_only_there(tech_client, tech, person):
    verification = start(tech, person)
    page = detail(tech_client, verification).content.decode()
    assert '<script src="/static/vendor/htmx-2.0.11.min.js"' in page
    # Nothing is loaded from elsewhere (looked for in the addresses: a random CSRF token in
    # the page may spell "cdn").
    addresses = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert addresses and not [
        a for a in addresses if a.startswith(("http:", "https:", "//")) or "unpkg" in a or "cdn" in a.lower()
    ]
    assert f'hx-get="{reverse("validation:status", args=[verification.pk])}?version={verification.version}"' in page
    assert b"htmx" not in tech_client.get(reverse("validation:start", args=[person.pk])).content


def test_status_is_204_while_the_version_is_unchanged(client, settings, org, person, django_assert_max_num_queries):
    settings.SESSION_ENGINE = CACHE_SESSIONS
    technician = technician_for(org, mfa=True)
    client.force_login(technician)
    verification = start(technician, person)
    url = reverse("validation:status", args=[verification.pk])
    client.get(url, {"version": verification.version})  # the first request stamps the session
    with django_assert_max_num_queries(3):
        response = client.get(url, {"version": verification.version})
    assert response.status_code == 204 and response.content == b""


def test_status_renders_the_fragment_when_the_version_moved(
    client, settings, org, person, outbox, capture, django_assert_max_num_queries
):
    settings.SESSION_ENGINE = CACHE_SESSIONS
    technician = technician_for(org, mfa=True)
    client.force_login(technician)
    verification = start(technician, person)
    url = reverse("validation:status", args=[verification.pk])
    seen = verification.version
    with capture(execute=True):
        services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
        services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
    verification.refresh_from_db()
    assert verification.version > seen
    client.get(url, {"version": seen})
    with django_assert_max_num_queries(5):
        response = client.get(url, {"version": seen})
    assert response.status_code == 200 and response["X-Portal-Fragment"] == "verification-status"
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<section id="verification-status"')
    assert "<html" not in fragment and "htmx-2.0.11" not in fragment
    assert f"?version={verification.version}" in fragment and "Ask the caller to pick" in fragment


def test_status_fragment_of_a_final_request_stops_polling(tech_client, tech, person):
    verification = start(tech, person)
    services.verification_cancel(actor=tech, verification=verification)
    response = tech_client.get(reverse("validation:status", args=[verification.pk]), {"version": "1"})
    assert response.status_code == 200
    assert b"hx-trigger" not in response.content and b"Stop: this verification was cancelled." in response.content


def test_status_with_garbage_version_renders_the_fragment(tech_client, tech, person):
    verification = start(tech, person)
    response = tech_client.get(reverse("validation:status", args=[verification.pk]), {"version": "x' OR 1=1"})
    assert response.status_code == 200 and b'id="verification-status"' in response.content


# --- List --------------------------------------------------------------------------------


def test_list_shows_my_requests_newest_first_paginated(tech_client, tech, org, person):
    for n in range(27):
        services.verification_request_create(
            actor=tech, person=person, action=Action.OTHER, ticket_reference=f"INC-{n}"
        )
    start(technician_for(org), person)  # a colleague's
    response = tech_client.get(reverse("validation:list"))
    assert response.status_code == 200
    assert [v.ticket_reference for v in response.context["page"]][:2] == ["INC-26", "INC-25"]
    assert len(response.context["page"]) == 25
    assert b'href="/verifications/"' in response.content  # the nav link
    second = tech_client.get(reverse("validation:list"), {"page": 2})
    assert [v.ticket_reference for v in second.context["page"]] == ["INC-1", "INC-0"]
    assert tech_client.get(reverse("validation:list"), {"page": "zzz"}).status_code == 200


def test_htmx_actions_answer_with_the_live_fragment_and_its_message(tech_client, tech, person):
    authenticator = AuthenticatorFactory(person=person)
    verification = start(tech, person, Action.PASSWORD_RESET)
    response = tech_client.post(
        reverse("validation:totp_check", args=[verification.pk]),
        {"code": totp_code(authenticator.raw_key)},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response["X-Portal-Fragment"] == "verification-status"
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="verification-status"')
    assert "Code accepted." in html and "Verified until" in html


# --- The live part, rendered by Jinja2 (config/jinja2.py) ---------------------------------

HOSTILE = '<img src=x onerror="alert(1)">'


def test_the_live_part_escapes_what_people_and_staff_typed(client, org, outbox, capture):
    person = PersonFactory(organization=org, full_name=f"Ada {HOSTILE}")
    technician = technician_for(org, mfa=True)
    technician.full_name = f"Terry {HOSTILE}"
    technician.save()
    verification = start(technician, person)
    with capture(execute=True):
        services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    services.sms_code_check(actor=technician, challenge=Challenge.objects.get(), code=code_in(last_text(person.phone)))
    colleague = technician_for(org, mfa=True)  # watching: the fragment names who started it
    services.verification_request_create(actor=colleague, person=person, action=Action.OTHER, ticket_reference="I-2")
    for user in (technician, colleague):
        client.force_login(user)
        for response in (
            detail(client, verification),
            client.get(reverse("validation:status", args=[verification.pk]), {"version": "0"}),
        ):
            html = response.content.decode()
            assert response.status_code == 200 and "Verified until" in html
            assert HOSTILE not in html and "onerror=" not in html.replace("onerror=&#34;", "").replace(
                "onerror=&quot;", ""
            )
            assert "Ada &lt;img src=x onerror=" in html


def test_every_form_of_the_live_part_carries_the_same_working_csrf_token(org, person, outbox, capture):
    from django.test import Client

    technician = technician_for(org, mfa=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(technician)
    verification = start(technician, person)
    html = client.get(reverse("validation:status", args=[verification.pk]), {"version": "0"}).content.decode()
    tokens = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert len(tokens) >= 3 and len(set(tokens)) == 1  # masked once for the whole fragment
    with capture(execute=True):
        response = client.post(
            reverse("validation:send", args=[verification.pk]),
            {"method": "sms_code", "csrfmiddlewaretoken": tokens[0]},
            HTTP_HX_REQUEST="true",
        )
    assert response.status_code == 200 and Challenge.objects.filter(request=verification).exists()
    refused = Client(enforce_csrf_checks=True)
    refused.force_login(technician)
    response = refused.post(reverse("validation:cancel", args=[verification.pk]), {"csrfmiddlewaretoken": "x" * 64})
    assert response.status_code == 403
