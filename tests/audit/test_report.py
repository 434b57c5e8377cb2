"""The compliance report: numbers from a seeded set of events, charts, printable page, scope."""

from datetime import date, timedelta

import pytest
from django.urls import reverse

from audit.events import EventType
from audit.report import compliance_report
from tests.audit.auditor_fixtures import T0, record

REPORT = reverse("audit:report")
PRINT = reverse("audit:report_print")
MARCH = {"since": "2026-03-01", "until": "2026-03-31"}


def at(hours: float):
    return T0 + timedelta(hours=hours)


@pytest.fixture
def seeded(org_a, org_b, technician_a, person_a):
    """A month of one organisation's helpdesk, plus noise that must not count."""

    def event(event_type, hours=0.0, organization=org_a, actor=technician_a, **details):
        return record(event_type, at=at(hours), organization=organization, actor=actor, target=person_a, **details)

    V = EventType
    for n in range(4):
        event(V.VERIFICATION_REQUEST_CREATED, verification=n + 1, person=person_a.pk)
    event(V.VERIFICATION_REQUEST_VERIFIED, 0.1, verification=1)
    event(V.VERIFICATION_REQUEST_VERIFIED, 0.1, verification=4)
    event(V.VERIFICATION_REQUEST_CONSUMED, 0.2, verification=1)
    event(V.VERIFICATION_REQUEST_FAILED, 0.3, verification=2, reason="The person denied the request")
    event(V.VERIFICATION_REQUEST_EXPIRED, 0.4, verification=3)
    for challenge, method in ((1, "sms_code"), (2, "push"), (3, "push"), (4, "totp"), (5, "sms_code")):
        event(V.VERIFICATION_CHALLENGE_CREATED, -0.5, challenge=challenge, method=method)
    event(V.VERIFICATION_CHALLENGE_WRONG_ANSWER, 0.05, challenge=1, method="sms_code", attempts=1)
    event(V.VERIFICATION_CHALLENGE_WRONG_ANSWER, 0.06, challenge=1, method="sms_code", attempts=2)
    event(V.VERIFICATION_CHALLENGE_APPROVED, 0.07, challenge=1, method="sms_code")
    event(V.VERIFICATION_CHALLENGE_APPROVED, 0.07, challenge=4, method="totp")
    event(V.VERIFICATION_CHALLENGE_SEND_FAILED, 0.08, challenge=5, method="sms_code")
    event(V.VERIFICATION_CHALLENGE_DENIED, 0.3, actor=None, challenge=2, person=person_a.pk)
    event(V.VERIFICATION_FRAUD_REPORTED, 0.5, actor=None, challenge=3, person=person_a.pk)
    event(V.VERIFICATION_PERSON_LOCKED, 0.5, actor=None, reason="The person reported they did not request this")
    event(V.VERIFICATION_CHALLENGE_EXPIRED, 0.6, challenge=3, method="push")
    # Access: two grants of one role (60 and 20 minutes) and a 10-minute break-glass grant.
    event("access.grant_activated", 1, grant=11, role="Password reset desk", expires_at=at(2).isoformat())
    event("access.grant_expired", 2, actor=None, grant=11)
    event("access.grant_activated", 3, grant=12, role="Password reset desk", expires_at=at(4).isoformat())
    event("access.grant_released", 3 + 20 / 60, grant=12)
    event("access.break_glass_activated", 5, grant=13, role="Emergency admin", break_glass=True)
    event("access.grant_revoked", 5 + 10 / 60, grant=13)
    event(V.ACTION_PERFORMED, 1.5, action="mfa_reset", verification=1, grant=11, person=person_a.pk)
    event(V.ACTION_PERFORMED, 1.6, action="password_reset", person=person_a.pk)  # recorded without its grant
    event(V.ACTION_REFUSED, 1.7, action="password_reset", person=person_a.pk, missing=["grant"])
    event(V.ACTION_FAILED, 1.8, action="account_unlock", verification=4, person=person_a.pk)
    # Noise: another organisation, and the same organisation outside the period.
    event(V.VERIFICATION_FRAUD_REPORTED, 0.5, organization=org_b, actor=None, challenge=3)
    event("access.grant_activated", 1, organization=org_b, grant=99, role="Password reset desk")
    event(V.VERIFICATION_REQUEST_FAILED, 24 * 40, verification=9)


def test_report_numbers_for_a_seeded_month(org_a, seeded):
    report = compliance_report(organization=org_a, since=date(2026, 3, 1), until=date(2026, 3, 31))
    assert dict(report.requests) == {
        "Started": 4,
        "Verified": 2,
        "Used for an action": 1,
        "Failed": 1,
        "Expired": 1,
        "Cancelled": 0,
        "Person locked": 1,
        "Fraud reported": 1,
    }
    methods = {m.method: m.counts for m in report.methods}
    assert methods == {
        "push": {"denied": 1, "fraud reported": 1, "expired": 1},
        "sms_code": {"wrong answer": 2, "approved": 1, "not delivered": 1},
        "totp": {"approved": 1},
    }
    assert [(e.details["reason"]) for e in report.failed] == ["The person denied the request"]
    assert len(report.locked) == 1 and len(report.fraud) == 1
    grants = {g.role: g for g in report.grants}
    assert set(grants) == {"Password reset desk", "Emergency admin"}
    desk = grants["Password reset desk"]
    assert desk.count == 2 and desk.total == timedelta(minutes=80) and desk.longest == timedelta(minutes=60)
    assert grants["Emergency admin"].durations == [timedelta(minutes=10)]
    assert [e.event_type for e in report.break_glass] == ["access.break_glass_activated"]
    actions = {row.event.details["action"]: row for row in report.actions}
    assert set(actions) == {"mfa_reset", "password_reset"}  # performed only
    assert (actions["mfa_reset"].verification, actions["mfa_reset"].grant) == ("1", "11")
    assert actions["mfa_reset"].role == "Password reset desk"
    assert (actions["password_reset"].verification, actions["password_reset"].grant) == ("", "")
    assert report.action_counts == {"performed": 2, "refused": 1, "failed": 1}


def test_a_grant_still_active_counts_until_now(org_a, technician_a, person_a):
    record("access.grant_activated", at=at(0), organization=org_a, actor=technician_a, grant=1, role="Desk")
    report = compliance_report(organization=org_a, since=date(2026, 3, 2), until=date(2026, 3, 2))
    assert report.grants[0].durations == [timedelta(hours=15)]  # to the end of the day


def test_an_empty_period_degrades_to_empty_sections(as_user, auditor_a, org_a):
    response = as_user(auditor_a).get(REPORT, {"organization": org_a.pk, **MARCH})
    assert response.status_code == 200
    page = response.content.decode()
    assert "No access grant started in this period." in page
    assert "No helpdesk action was performed in this period." in page
    assert "No break-glass access in this period." in page


def test_report_page_has_server_rendered_charts_and_a_printable_version(as_user, auditor_a, org_a, seeded):
    client = as_user(auditor_a)
    response = client.get(REPORT, {"organization": org_a.pk, **MARCH})
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count("<svg") == 3 and "<script" not in page
    assert 'aria-label="Challenges by method and outcome"' in page
    assert "Password reset desk" in page and "1 h 00 min" in page and "20 min" in page
    assert f"{PRINT}?" in page
    printable = client.get(PRINT, {"organization": org_a.pk, **MARCH})
    text = printable.content.decode()
    assert printable.status_code == 200 and 'class="printable"' in text
    assert 'class="topbar"' not in text and "<svg" in text and "Alpha Corp" in text


def test_report_refuses_an_organisation_outside_the_scope(as_user, auditor_a, org_b, seeded):
    client = as_user(auditor_a)
    for url in (REPORT, PRINT):
        response = client.get(url, {"organization": org_b.pk, **MARCH})
        assert response.status_code == 400
        assert response.context["report"] is None and "Beta Ltd" not in response.content.decode()


def test_report_rejects_a_backwards_or_overlong_period(as_user, superuser, org_a):
    client = as_user(superuser)
    backwards = client.get(REPORT, {"organization": org_a.pk, "since": "2026-03-05", "until": "2026-03-01"})
    assert backwards.status_code == 400 and "until" in backwards.context["form"].errors
    too_long = client.get(REPORT, {"organization": org_a.pk, "since": "2024-01-01", "until": "2026-03-01"})
    assert too_long.status_code == 400


def test_report_form_alone_is_a_plain_page(as_user, org_admin_a, org_a):
    response = as_user(org_admin_a).get(REPORT)
    assert response.status_code == 200 and response.context["report"] is None
    assert [o.pk for o in response.context["form"].fields["organization"].queryset] == [org_a.pk]
