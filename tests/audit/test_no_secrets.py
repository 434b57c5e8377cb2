"""No secret reaches the event log, its hashes' inputs or a log line: a full sign-in,
enrolment, verification (SMS code, push link, manager approval, authenticator) and action,
then a scan."""

import base64
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.utils import timezone
from django_otp.oath import TOTP

from access.services.actions import helpdesk_action_perform
from audit.chain import HASHED_FIELDS, LINK_ROW_PATHS, canonical_content, security_event_seal
from audit.models import ChainLink
from tests.access.factories import GrantFactory, RoleFactory
from tests.accounts.factories import PASSWORD, UserFactory
from tests.helpers import sign_in
from tests.validation.approval_flows import approval_token_in, approver_code_in
from tests.validation.factories import OrganizationFactory, PersonFactory, technician_for
from tests.validation.helpers import code_in, last_text, link_token_in
from validation import services
from validation.models import Action, Method

pytestmark = pytest.mark.django_db


class Everything(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record):
        if not record.name.startswith("factory."):  # factory_boy's own debug lines, test tooling only
            self.lines.append(self.format(record))


@pytest.fixture
def log_lines():
    """Every log line of every logger, including those that do not propagate to the root."""
    handler = Everything()
    loggers = [logging.getLogger(name) for name in ("", "django", "django.server", "django.request", "audit.events")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler.lines
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def current_code(secret_base32: str) -> str:
    totp = TOTP(base64.b32decode(secret_base32 + "=" * (-len(secret_base32) % 8)), step=30, digits=6)
    totp.time = timezone.now().timestamp()
    return f"{totp.token():06d}"


def test_no_secret_reaches_an_event_or_a_log_line(client, settings, log_lines, django_capture_on_commit_callbacks):
    settings.SMS_DEV_OUTBOX = True
    capture = django_capture_on_commit_callbacks
    secrets: dict[str, str] = {"password": PASSWORD}

    staff = UserFactory(mfa=True)
    secrets["staff TOTP secret"] = staff.totp_secret
    sign_in(client, staff, password=PASSWORD, secret=staff.totp_secret)

    org = OrganizationFactory()
    person = PersonFactory(organization=org, manager=PersonFactory(organization=org))
    technician = technician_for(org)
    GrantFactory(
        technician=technician,
        organization=org,
        role=RoleFactory(name="Resets", actions=["password_reset", "mfa_reset", "account_unlock", "contact_change"]),
    )

    # Enrolment of the person's authenticator through a link.
    with capture(execute=True):
        services.enrollment_start(actor=technician, person=person)
    enrolment_text = last_text(person.phone)
    secrets["enrolment link token"] = link_token_in(enrolment_text)
    uri = services.enrollment_otpauth_uri(services.enrollment_for_link(secrets["enrolment link token"]))
    secrets["person TOTP secret"] = parse_qs(urlsplit(uri).query)["secret"][0]
    assert services.enrollment_confirm(
        token=secrets["enrolment link token"], code=current_code(secrets["person TOTP secret"])
    )

    # An SMS code: one wrong try, then the right one.
    first = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-1"
    )
    with capture(execute=True):
        challenge = services.challenge_start(actor=technician, verification=first, method=Method.SMS_CODE)
    secrets["SMS code"] = code_in(last_text(person.phone))
    secrets["SMS text"] = last_text(person.phone)
    wrong = "000000" if secrets["SMS code"] != "000000" else "111111"
    services.sms_code_check(actor=technician, challenge=challenge, code=wrong)
    assert services.sms_code_check(actor=technician, challenge=challenge, code=secrets["SMS code"])

    # A number-matched push link, then an authenticator code, then the action.
    second = services.verification_request_create(
        actor=technician, person=person, action=Action.MFA_RESET, ticket_reference="INC-2"
    )
    with capture(execute=True):
        push = services.challenge_start(actor=technician, verification=second, method=Method.PUSH)
    secrets["push link token"] = link_token_in(last_text(person.phone))
    push.refresh_from_db()
    services.push_respond(token=secrets["push link token"], choice=str(push.match_number))
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):  # the enrolment used this step's code
        secrets["person TOTP code"] = current_code(secrets["person TOTP secret"])
        assert services.totp_check(actor=technician, verification=second, code=secrets["person TOTP code"])
        # The manager's approval (an MFA reset needs one): link, identity code, approve.
        with capture(execute=True):
            services.approval_start(actor=technician, verification=second, method=Method.MANAGER_APPROVAL)
        secrets["approval link token"] = approval_token_in(last_text(person.manager.phone))
        with capture(execute=True):
            services.approver_code_request(token=secrets["approval link token"])
        secrets["approver code"] = approver_code_in(last_text(person.manager.phone))
        secrets["approver proof"] = services.approver_code_confirm(
            token=secrets["approval link token"], code=secrets["approver code"]
        )
        services.approval_decide(
            token=secrets["approval link token"], decision="approve", proof=secrets["approver proof"]
        )
        helpdesk_action_perform(actor=technician, person=person, action=Action.MFA_RESET, verification=second)

    # A password reset: the temporary password, shown once to the technician, is a secret too.
    with time_machine.travel(timezone.now() + timedelta(seconds=62)):
        third = services.verification_request_create(
            actor=technician, person=person, action=Action.PASSWORD_RESET, ticket_reference="INC-3"
        )
        secrets["second TOTP code"] = current_code(secrets["person TOTP secret"])
        assert services.totp_check(actor=technician, verification=third, code=secrets["second TOTP code"])
        with capture(execute=True):
            outcome = helpdesk_action_perform(
                actor=technician, person=person, action=Action.PASSWORD_RESET, verification=third
            )
        secrets["temporary password"] = outcome.temporary_password

    security_event_seal()
    events = list(ChainLink.objects.values_list(*LINK_ROW_PATHS))
    kinds = {row[HASHED_FIELDS.index("event_type")] for row in events}
    assert {
        "auth.login_succeeded",
        "verification.enrollment_completed",
        "verification.challenge_wrong_answer",
        "verification.challenge_approved",
        "verification.request_consumed",
        "verification.approver_confirmed",
        "action.performed",
    } <= kinds
    haystacks = {
        "security events": "\n".join(canonical_content(row[:-1]).decode() + row[-1] for row in events),
        "log lines": "\n".join(log_lines),
    }
    for where, text in haystacks.items():
        for what, secret in secrets.items():
            assert secret not in text, f"{what} found in {where}"
        assert "/r/" not in text and "/e/" not in text and "/a/" not in text and "otpauth://" not in text, where
