"""The development SMS outbox: "the phone" in a demo without Twilio, absent otherwise."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.validation.helpers import last_text, link_token_in
from validation import services
from validation.models import Action, Method, OutboxMessage

URL = reverse("validation:outbox")
PROPERTY = hypothesis_settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def text(body, *, to="+12025550100", seconds_ago=0):
    return OutboxMessage.objects.create(
        to=to,
        body=body,
        created_at=timezone.now() - timedelta(seconds=seconds_ago),
        provider_message_id=f"DEV{OutboxMessage.objects.count()}-{seconds_ago}",
    )


@pytest.mark.parametrize("method", ["get", "post", "head"])
def test_outbox_is_not_found_without_the_development_outbox(client, db, settings, method):
    settings.SMS_DEV_OUTBOX = False
    text("Your code is 123456")
    response = getattr(client, method)(URL)
    assert response.status_code == 404
    assert b"123456" not in response.content


def test_outbox_lists_texts_newest_first(client, outbox, db):
    text("the older one", seconds_ago=30)
    text("the newer one", to="+447700900123")
    response = client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.index("the newer one") < page.index("the older one")
    assert "+447700900123" in page and "+12025550100" in page
    assert "Development SMS outbox" in page and "Development only" in page


def test_outbox_links_urls_and_escapes_everything_else(client, outbox, db):
    url = "http://127.0.0.1:8000/r/abc:1xXWiE:sig-_123/"
    text(f'<script>alert("x")</script> & <b>bold</b> Open: {url}')
    page = client.get(URL).content.decode()
    assert f'<a href="{url}"' in page
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "&amp;" in page


def test_a_real_push_text_is_there_with_its_link(
    client, outbox, technician, person, django_capture_on_commit_callbacks
):
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.PASSWORD_RESET, ticket_reference="INC-7"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
    token = link_token_in(last_text(person.phone))
    page = client.get(URL).content.decode()
    href = re.search(r'<a href="([^"]+)"', page).group(1)
    assert href.endswith(reverse("validation:push_respond", kwargs={"token": token}))
    assert client.get(urlsplit(href).path).status_code == 200  # the phone opens it


def test_outbox_refreshes_itself_and_is_private(client, outbox, db):
    response = client.get(URL)
    page = response.content.decode()
    assert re.search(r'<meta http-equiv="refresh" content="3">', page)
    assert '<meta name="robots" content="noindex">' in page and "<script" not in page
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"


def test_outbox_shows_an_empty_state(client, outbox, db):
    assert "No texts yet" in client.get(URL).content.decode()


def test_outbox_needs_no_sign_in(client, outbox, db):
    text("hello phone")
    response = client.get(URL)
    assert response.status_code == 200 and "hello phone" in response.content.decode()


@given(data=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4))
@PROPERTY
def test_outbox_is_read_only_for_any_form_data(client, outbox, db, data):
    if not OutboxMessage.objects.exists():
        text("the only text")
    before = list(OutboxMessage.objects.values())
    response = client.post(URL, data)
    assert response.status_code == 405 and b"read-only" in response.content
    assert client.get(URL, data).status_code == 200  # query parameters are ignored
    assert list(OutboxMessage.objects.values()) == before
