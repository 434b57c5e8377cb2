"""Steps of a manager or peer approval, shared by the approval tests."""

import re

from django.urls import reverse

from tests.accounts.factories import PersonFactory
from tests.validation.helpers import last_text
from validation import services
from validation.models import Action, Challenge, Method, OutboxMessage


def person_with_manager(org, **kwargs):
    manager = PersonFactory(organization=org, full_name="Morgan Manager")
    return PersonFactory(organization=org, manager=manager, **kwargs)


def verification_for(technician, person, action=Action.MFA_RESET):
    return services.verification_request_create(
        actor=technician, person=person, action=action, ticket_reference="INC-4242"
    )


def approval_started(technician, verification, capture, method=Method.MANAGER_APPROVAL, peer=None) -> Challenge:
    with capture(execute=True):
        challenge = services.approval_start(actor=technician, verification=verification, method=method, peer=peer)
    challenge.refresh_from_db()
    return challenge


def approval_token_in(body: str) -> str:
    return re.search(r"/a/([^/\s]+)/", body).group(1)


def approver_code_in(body: str) -> str:
    return re.search(r"code to confirm it is you is (\d{6,8})", body).group(1)


def page_url(token, step=""):
    name = {"": "approver", "code": "approver_code", "confirm": "approver_confirm", "decide": "approver_decide"}[step]
    return reverse(f"validation:{name}", kwargs={"token": token})


def identity_confirmed(client, approver, capture) -> str:
    """The approver opens the link, asks for a code and enters it: returns the link's token.
    ``client`` then holds the proof cookie."""
    token = approval_token_in(last_text(approver.phone))
    assert client.get(page_url(token)).status_code == 200
    with capture(execute=True):
        assert client.post(page_url(token, "code")).status_code == 302
    response = client.post(page_url(token, "confirm"), {"code": approver_code_in(last_text(approver.phone))})
    assert response.status_code == 302, response.content
    return token


def texts_to(phone: str) -> int:
    return OutboxMessage.objects.filter(to=phone).count()
