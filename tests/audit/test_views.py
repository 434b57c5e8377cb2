"""Auditor pages: who may open them, what each one shows, filters and keyset pages."""

import re
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from audit.events import EventType
from audit.models import SecurityEvent
from audit.selectors import AuditScope, Cursor, EventFilter, security_event_list, security_event_page
from tests.audit.auditor_fixtures import T0, record, staff

LIST = reverse("audit:event_list")


def ids_on(response) -> list[int]:
    return [e.pk for e in response.context["page"].events]


def shown(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


# --- Who may open the audit pages ------------------------------------------------------


def audit_urls(event, person, user):
    return [
        LIST,
        reverse("audit:event_detail", args=[event.pk]),
        reverse("audit:person_timeline", args=[person.pk]),
        reverse("audit:staff_timeline", args=[user.pk]),
        reverse("audit:export_csv"),
        reverse("audit:export_jsonl"),
        reverse("audit:report"),
        reverse("audit:report_print"),
    ]


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.APPROVER])
def test_technicians_and_approvers_get_403_on_every_audit_page(as_user, org_a, events, person_a, technician_a, role):
    client = as_user(staff(role, organizations=[org_a]))
    for url in audit_urls(events["a"][0], person_a, technician_a):
        assert client.get(url).status_code == 403, url


def test_anonymous_visitors_are_sent_to_sign_in(client, events, person_a, technician_a):
    for url in audit_urls(events["a"][0], person_a, technician_a):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_nav_shows_audit_to_auditors_only(as_user, auditor_a, technician_a):
    assert b'href="/audit/"' not in as_user(technician_a).get(reverse("dashboard")).content
    assert b'href="/audit/"' in as_user(auditor_a).get(reverse("dashboard")).content


@pytest.mark.parametrize("who", ["auditor_a", "org_admin_a"])
def test_scoped_users_see_only_their_organisations_events(request, as_user, events, who):
    client = as_user(request.getfixturevalue(who))
    response = client.get(LIST)
    ids = ids_on(response)
    assert {e.pk for e in events["a"]} <= set(ids)
    assert not {e.pk for e in events["b"]} & set(ids)
    assert "Beta Ltd" not in shown(response)
    for event in events["b"]:
        assert client.get(reverse("audit:event_detail", args=[event.pk])).status_code == 404


@pytest.mark.parametrize("who", ["auditor_a", "org_admin_a"])
def test_scoped_users_cannot_open_another_organisations_timelines(
    request, as_user, events, person_b, technician_b, who
):
    client = as_user(request.getfixturevalue(who))
    assert client.get(reverse("audit:person_timeline", args=[person_b.pk])).status_code == 404
    assert client.get(reverse("audit:staff_timeline", args=[technician_b.pk])).status_code == 404


def test_scoped_users_cannot_filter_on_another_organisation(as_user, auditor_a, org_b, events):
    response = as_user(auditor_a).get(LIST, {"organization": org_b.pk})
    assert response.context["page"] is None
    assert "organization" in response.context["form"].errors


def test_events_without_an_organisation_are_for_superusers_only(as_user, auditor_a, superuser, technician_a):
    sign_in = record(EventType.AUTH_LOGIN_SUCCEEDED, actor=technician_a, target=technician_a)
    assert sign_in.pk not in ids_on(as_user(auditor_a).get(LIST))
    assert as_user(auditor_a).get(reverse("audit:event_detail", args=[sign_in.pk])).status_code == 404
    assert sign_in.pk in ids_on(as_user(superuser).get(LIST))


def test_superuser_sees_every_organisation(as_user, superuser, events):
    ids = set(ids_on(as_user(superuser).get(LIST)))
    assert {e.pk for e in events["a"] + events["b"]} <= ids


def test_an_auditor_with_no_organisation_sees_nothing(as_user, events):
    response = as_user(staff(Role.AUDITOR)).get(LIST)
    assert response.status_code == 200 and ids_on(response) == []


# --- Detail ----------------------------------------------------------------------------


def test_detail_shows_fields_pretty_details_and_chain_status(as_user, auditor_a, events, technician_a, person_a):
    event = events["a"][0]
    response = as_user(auditor_a).get(reverse("audit:event_detail", args=[event.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Caller verification started" in page and "verification.request_created" in page
    assert "&quot;ticket&quot;: &quot;INC-A1&quot;" in page  # indented JSON, escaped
    assert reverse("audit:staff_timeline", args=[technician_a.pk]) in page
    assert reverse("audit:person_timeline", args=[person_a.pk]) in page
    assert response.context["link_verifies"] in (True, False, None)
    assert "Chain link" in page


def test_detail_says_an_unsealed_event_waits_and_a_sealed_one_verifies(as_user, auditor_a, events):
    from audit.chain import security_event_seal

    client, url = as_user(auditor_a), reverse("audit:event_detail", args=[events["a"][0].pk])
    waiting = client.get(url)  # the test's transaction never commits, so nothing sealed it
    assert waiting.context["link_verifies"] is None and "waiting for the sealer" in waiting.content.decode()
    security_event_seal()
    sealed = client.get(url)
    assert sealed.context["link_verifies"] is True
    assert "Chain link verifies" in sealed.content.decode() and "Previous hash" in sealed.content.decode()


def test_detail_reports_a_link_that_does_not_verify(as_user, auditor_a, events, monkeypatch):
    import audit.views.events as views

    monkeypatch.setattr(views, "event_link_status", lambda event: False)
    response = as_user(auditor_a).get(reverse("audit:event_detail", args=[events["a"][0].pk]))
    assert "Chain link does not verify" in response.content.decode()


# --- Timelines -------------------------------------------------------------------------


def test_person_timeline_holds_events_about_the_person(as_user, auditor_a, events, person_a, org_a, technician_a):
    by_details = record(
        EventType.VERIFICATION_CHALLENGE_APPROVED, organization=org_a, end_user=True, person=person_a.pk, method="push"
    )
    other = record(EventType.VERIFICATION_REQUEST_CREATED, organization=org_a, actor=technician_a, person=999_999)
    response = as_user(auditor_a).get(reverse("audit:person_timeline", args=[person_a.pk]))
    ids = ids_on(response)
    assert set(ids) == {e.pk for e in events["a"]} | {by_details.pk}
    assert other.pk not in ids
    assert "Timeline of Ada Alpha" in shown(response)


def test_person_timeline_survives_the_person_being_deleted(as_user, auditor_a, org_a, events):
    gone = record(EventType.DIRECTORY_PERSON_DELETED, organization=org_a, person=424242)
    response = as_user(auditor_a).get(reverse("audit:person_timeline", args=[424242]))
    assert response.status_code == 200 and ids_on(response) == [gone.pk]


def test_staff_timeline_holds_what_they_did_and_what_was_done_to_them(as_user, auditor_a, org_a, events, technician_a):
    assigned = SecurityEvent.objects.get(
        event_type=EventType.DIRECTORY_STAFF_ASSIGNED, target_id=str(technician_a.pk), organization_id=org_a.pk
    )
    response = as_user(auditor_a).get(reverse("audit:staff_timeline", args=[technician_a.pk]))
    assert set(ids_on(response)) == {e.pk for e in events["a"]} | {assigned.pk}


# --- Filters ---------------------------------------------------------------------------


def test_filter_by_organisation_actor_type_group_and_person(as_user, superuser, org_a, events, technician_a, person_b):
    client = as_user(superuser)
    a = {e.pk for e in events["a"]}
    assert set(ids_on(client.get(LIST, {"organization": org_a.pk}))) >= a
    assert not set(ids_on(client.get(LIST, {"organization": org_a.pk}))) & {e.pk for e in events["b"]}
    assert set(ids_on(client.get(LIST, {"actor": technician_a.pk}))) == a
    created = {events["a"][0].pk, events["b"][0].pk}
    assert set(ids_on(client.get(LIST, {"event_type": "verification.request_created"}))) == created
    group = set(ids_on(client.get(LIST, {"event_type": "verification.*"})))
    assert group == created | {events["a"][1].pk, events["b"][1].pk}
    assert set(ids_on(client.get(LIST, {"person": person_b.pk}))) == {e.pk for e in events["b"]}


def test_filter_by_date_range_is_inclusive_in_utc_days(as_user, superuser, events):
    client = as_user(superuser)
    day = T0.date()
    first_day = set(ids_on(client.get(LIST, {"since": day.isoformat(), "until": day.isoformat()})))
    assert first_day == {events["a"][0].pk, events["a"][1].pk, events["b"][0].pk, events["b"][1].pk}
    later = set(ids_on(client.get(LIST, {"since": (day + timedelta(days=1)).isoformat(), "until": "2026-03-31"})))
    assert later == {events["a"][2].pk}
    response = client.get(LIST, {"since": "2026-03-05", "until": "2026-03-01"})
    assert response.context["page"] is None and "until" in response.context["form"].errors


def test_free_text_matches_actor_target_and_request_id(as_user, superuser, org_a, events, technician_a):
    tagged = record(EventType.VERIFICATION_REQUEST_CREATED, organization=org_a, actor=technician_a)
    client = as_user(superuser)
    assert set(ids_on(client.get(LIST, {"q": "ada alpha"}))) == {e.pk for e in events["a"]}
    assert set(ids_on(client.get(LIST, {"q": "BOB BET"}))) == {e.pk for e in events["b"]}
    assert tagged.pk in ids_on(client.get(LIST, {"q": technician_a.full_name[:6]}))
    short = client.get(LIST, {"q": "ad"})
    assert short.context["page"] is None and "q" in short.context["form"].errors


# --- Keyset pages ----------------------------------------------------------------------


@pytest.fixture
def many(org_a, technician_a):
    """130 events in org A, in bursts of 7 sharing one timestamp, newest first."""
    made = []
    for n in range(130):
        at = T0 + timedelta(seconds=n // 7)
        made.append(record(EventType.VERIFICATION_CHALLENGE_SENT, at=at, organization=org_a, actor=technician_a))
    return sorted(made, key=lambda e: (e.created_at, e.pk), reverse=True)


def test_keyset_pages_have_no_duplicates_or_gaps_with_equal_timestamps(as_user, superuser, many):
    client = as_user(superuser)
    params = {"event_type": "verification.challenge_sent"}
    seen, pages = [], []
    response = client.get(LIST, params)
    while True:
        pages.append(ids_on(response))
        seen += pages[-1]
        older = response.context["page"].older
        if older is None:
            break
        response = client.get(LIST, {**params, "before": str(older)})
    assert seen == [e.pk for e in many]
    assert [len(p) for p in pages] == [50, 50, 30]
    # And back up with "newer": the same pages in reverse.
    back = [pages[-1]]
    while response.context["page"].newer is not None:
        response = client.get(LIST, {**params, "after": str(response.context["page"].newer)})
        back.append(ids_on(response))
    assert back[::-1] == pages


def test_page_links_keep_the_filter(as_user, superuser, many):
    response = as_user(superuser).get(LIST, {"event_type": "verification.challenge_sent"})
    older_url = response.context["older_url"]
    assert "event_type=verification.challenge_sent" in older_url and "before=" in older_url
    assert response.context["newer_url"] == ""
    assert b'<option value="verification.challenge_sent" selected>' in response.content  # the form keeps it


def test_selector_pages_newest_first_and_counts_nothing(many):
    only_these = EventFilter(event_type="verification.challenge_sent")
    events = security_event_list(scope=AuditScope(organization_ids=None), event_filter=only_these)
    with CaptureQueriesContext(connection) as captured:
        page = security_event_page(events=events, size=10)
    selects = [q["sql"].upper() for q in captured.captured_queries if q["sql"].upper().startswith("SELECT")]
    assert len(selects) == 1
    assert "COUNT(" not in selects[0] and "OFFSET" not in selects[0]
    assert [e.pk for e in page.events] == [e.pk for e in many[:10]]
    assert Cursor.parse(str(page.older)) == page.older
    if connection.vendor == "postgresql":  # planned for these values, not a generic plan
        assert any("plan_cache_mode = force_custom_plan" in q["sql"] for q in captured.captured_queries)


def test_a_malformed_cursor_shows_the_first_page(as_user, superuser, many):
    params = {"event_type": "verification.challenge_sent"}
    response = as_user(superuser).get(LIST, {**params, "before": "1234-x"})
    assert ids_on(response) == [e.pk for e in many[:50]]


# --- Indexes (PostgreSQL) --------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the indexes are PostgreSQL's (audit/migrations/0006)")
@pytest.mark.parametrize(
    ("event_filter", "index"),
    [
        (EventFilter(person_id=5), "audit_event_subject"),
        (EventFilter(staff_id=5), "audit_event_subject"),
        (EventFilter(actor_id=5), "audit_event_actor"),
        (EventFilter(text="alice"), "audit_event_search_trgm"),
    ],
)
def test_each_filter_matches_its_index_expression(db, event_filter, index):
    events = security_event_list(scope=AuditScope(organization_ids=None), event_filter=event_filter)
    with transaction.atomic(), connection.cursor() as cursor:
        # Only whether the index can serve the filter: a tiny table is cheaper to scan, and
        # an ordered scan of created_at may look cheaper than the index and a sort.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = events[:51].explain()
    assert index in plan
