"""CSV and JSON-lines export: the list's rows, scoped, streamed, and free of secrets."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import time_machine
from django.db import connection
from django.db.models.query import QuerySet
from django.http import StreamingHttpResponse
from django.urls import reverse

from audit import export as audit_export
from audit import export_postgresql
from audit.events import EventType
from audit.export import export_columns
from audit.models import ChainLink
from tests.audit.auditor_fixtures import T0, record
from tests.validation.helpers import code_in, last_text, link_token_in
from validation import services
from validation.models import Action, Method

LIST = reverse("audit:event_list")
CSV = reverse("audit:export_csv")
JSONL = reverse("audit:export_jsonl")


def body(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body(response))))


def jsonl_rows(response) -> list[dict]:
    return [json.loads(line) for line in body(response).splitlines()]


def listed_ids(client, params) -> list[int]:
    """Every id the list shows for ``params``, following its "older" links."""
    ids, response = [], client.get(LIST, params)
    while True:
        ids += [e.pk for e in response.context["page"].events]
        older = response.context["page"].older
        if older is None:
            return ids
        response = client.get(LIST, {**params, "before": str(older)})


@pytest.fixture
def busy(org_a, org_b, technician_a, person_a):
    """120 more events in org A with shared timestamps, so the list needs three pages."""
    for n in range(120):
        record(
            EventType.VERIFICATION_CHALLENGE_SENT,
            at=T0 + timedelta(seconds=n // 5),
            organization=org_a,
            actor=technician_a,
            target=person_a,
            method="sms_code",
        )


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"event_type": "verification.*"},
        {"q": "ada alpha"},
        {"since": "2026-03-02", "until": "2026-03-02"},
    ],
)
def test_export_of_a_filter_equals_the_list(as_user, superuser, events, busy, params):
    client = as_user(superuser)
    expected = listed_ids(client, params)
    assert len(expected) > 50
    # Each export records an audit.exported event (no organisation: superusers see it).
    exported = [r for r in csv_rows(client.get(CSV, params)) if r["event_type"] != "audit.exported"]
    assert [int(r["id"]) for r in exported] == expected
    exported = [r for r in jsonl_rows(client.get(JSONL, params)) if r["event_type"] != "audit.exported"]
    assert [r["id"] for r in exported] == expected


@pytest.mark.parametrize("url", [CSV, JSONL])
def test_export_is_scoped_like_the_list(as_user, auditor_a, org_a, events, url):
    client = as_user(auditor_a)
    response = client.get(url)
    text = body(response)
    assert "Beta Ltd" not in text and "INC-B1" not in text
    rows = csv_rows(client.get(url)) if url == CSV else jsonl_rows(client.get(url))
    assert {int(r["organization_id"]) for r in rows} == {org_a.pk}
    assert [int(r["id"]) for r in rows] == listed_ids(client, {})


def test_export_refuses_another_organisations_filter(as_user, auditor_a, org_b, events):
    response = as_user(auditor_a).get(CSV, {"organization": org_b.pk})
    assert response.status_code == 400 and b"organization" in response.content


def test_csv_format(as_user, superuser, events):
    response = as_user(superuser).get(CSV, {"event_type": "verification.request_created"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="security-events-')
    text = body(response)
    assert text.splitlines()[0] == ",".join(export_columns())
    rows = list(csv.DictReader(io.StringIO(text)))
    first = rows[-1]  # oldest last
    assert first["event_type"] == "verification.request_created"
    assert first["created_at"] == "2026-03-02T09:01:00+00:00"
    assert json.loads(first["details"]) == {"ticket": "INC-A1"}
    assert first["actor_kind"] == "staff" and first["source_ip"] == ""


def test_jsonl_format(as_user, superuser, events):
    response = as_user(superuser).get(JSONL, {"event_type": "verification.fraud_reported"})
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    (line,) = body(response).splitlines()
    row = json.loads(line)
    assert list(row) == list(export_columns())
    assert row["actor_kind"] == "end_user" and row["actor_id"] is None
    assert row["details"] == {"person": events["b"][1].details["person"]}
    assert row["created_at"] == "2026-03-02T09:04:00+00:00"


def test_csv_neutralises_spreadsheet_formulas(as_user, superuser, org_a):
    class Target:
        pk = 5
        label = '=HYPERLINK("http://evil.example","x")'

        def __str__(self):
            return self.label

    record(EventType.DIRECTORY_PERSON_UPDATED, organization=org_a, target=Target())
    client = as_user(superuser)
    row = csv_rows(client.get(CSV, {"event_type": "directory.person_updated"}))[0]
    assert row["target_label"] == "'" + Target.label
    assert jsonl_rows(client.get(JSONL, {"event_type": "directory.person_updated"}))[0]["target_label"] == Target.label


@pytest.mark.parametrize("url", [CSV, JSONL])
def test_export_streams_lazily_in_pieces(as_user, superuser, events, busy, url, monkeypatch):
    """Rows come from PostgreSQL as it sends them (COPY for CSV, a streamed query for JSON
    lines; ``iterator(chunk_size=...)`` elsewhere), only once the response is consumed, and
    leave in pieces of ROWS_PER_CHUNK rows, never whole."""
    monkeypatch.setattr(audit_export, "ROWS_PER_CHUNK", 40)
    reads = []
    real_iterator, real_copy, real_stream = QuerySet.iterator, export_postgresql._copied, export_postgresql._streamed

    def iterator_spy(self, chunk_size=None):
        reads.append(("iterator", chunk_size))
        return real_iterator(self, chunk_size=chunk_size)

    def copy_spy(rows):
        reads.append(("copy", None))
        yield from real_copy(rows)

    def stream_spy(rows):
        reads.append(("stream", None))
        yield from real_stream(rows)

    monkeypatch.setattr(QuerySet, "iterator", iterator_spy)
    monkeypatch.setattr(export_postgresql, "_copied", copy_spy)
    monkeypatch.setattr(export_postgresql, "_streamed", stream_spy)
    response = as_user(superuser).get(url)
    assert isinstance(response, StreamingHttpResponse) and response.streaming
    assert reads == []  # nothing read before the response is consumed
    pieces = list(response.streaming_content)
    if connection.vendor == "postgresql":
        assert reads == [("copy", None)] if url == CSV else [("stream", None)]
    else:
        assert reads == [("iterator", audit_export.CHUNK_SIZE)]
    assert len(pieces) >= 4  # 125+ rows in pieces of 40 rows (plus the CSV header)
    assert max(len(p) for p in pieces) < 40 * 2000
    if url == JSONL:
        assert all(p.endswith(b"\n") for p in pieces)  # whole lines in every piece


def run_verification_flow(technician, person, capture):
    """An SMS code (one wrong try, then right) and a push link: returns the code and the token."""
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-7"
    )
    with capture(execute=True):
        challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    code = code_in(last_text(person.phone))
    services.sms_code_check(actor=technician, challenge=challenge, code="000000" if code != "000000" else "111111")
    services.sms_code_check(actor=technician, challenge=challenge, code=code)
    second = services.verification_request_create(
        actor=technician, person=person, action=Action.PASSWORD_RESET, ticket_reference="INC-8"
    )
    with capture(execute=True):
        services.challenge_start(actor=technician, verification=second, method=Method.PUSH)
    return code, link_token_in(last_text(person.phone))


def test_no_secret_reaches_an_export(
    as_user, superuser, technician_a, person_a, settings, django_capture_on_commit_callbacks
):
    settings.SMS_DEV_OUTBOX = True
    # A whole second: no microseconds in timestamps that a 6-digit code could match by chance.
    with time_machine.travel(T0, tick=False):
        code, token = run_verification_flow(technician_a, person_a, django_capture_on_commit_callbacks)
    client = as_user(superuser)
    for url in (CSV, JSONL):
        text = body(client.get(url))
        assert "verification.challenge_approved" in text
        assert code not in text and token not in text and "/r/" not in text


def test_an_export_is_itself_recorded(as_user, auditor_a, events):
    from audit.models import SecurityEvent

    as_user(auditor_a).get(CSV, {"event_type": "verification.*"})
    event = SecurityEvent.objects.get(event_type="audit.exported")
    assert event.actor_id == auditor_a.pk
    assert event.details == {"format": "csv", "filter": {"event_type": "verification.*"}}


@pytest.mark.parametrize("microsecond", [0, 120000, 123456, 5])
@pytest.mark.parametrize("url", [CSV, JSONL])
def test_exported_times_are_the_stored_instants(as_user, superuser, org_a, microsecond, url):
    """Whatever the fraction (PostgreSQL trims trailing zeros), the exported time reads back
    as the stored instant, in UTC, sealed time included."""
    at = T0.replace(microsecond=microsecond)
    event = record(EventType.VERIFICATION_CHALLENGE_SENT, at=at, organization=org_a, method="sms_code")
    response = as_user(superuser).get(url, {"event_type": "verification.challenge_sent"})
    (row,) = csv_rows(response) if url == CSV else jsonl_rows(response)
    assert datetime.fromisoformat(row["created_at"]) == at
    assert row["created_at"].endswith("+00:00")
    link = ChainLink.objects.filter(event=event).first()
    if link is not None:
        assert datetime.fromisoformat(row["sealed_at"]) == link.sealed_at


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY export runs on PostgreSQL only")
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("abandoned", [False, True])
def test_the_export_leaves_the_connection_as_it_found_it(events, busy, abandoned, fmt, monkeypatch):
    """The export changes planner settings; the connection is Django's own, persistent one,
    so the next query must plan as usual and run at once, also after a download abandoned
    halfway (COPY ended, or the streamed query cancelled and its rows drained)."""
    from audit.models import SecurityEvent

    monkeypatch.setattr(audit_export, "ROWS_PER_CHUNK", 20)  # 125+ events: several pieces
    events_query = SecurityEvent.objects.order_by("-id")
    pieces = (export_postgresql.csv_pieces if fmt == "csv" else export_postgresql.json_line_pieces)(events_query)
    if abandoned:
        assert next(pieces)
        pieces.close()  # what the response's close() does when the client goes away
    else:
        assert b"".join(pieces).count(b"\n") == SecurityEvent.objects.count()
    with connection.cursor() as cursor:
        for name, _ in export_postgresql._PLANNER:
            cursor.execute(f"SELECT setting = reset_val FROM pg_settings WHERE name = '{name}'")
            assert cursor.fetchone()[0], name
        cursor.execute("SELECT count(*) FROM audit_securityevent")
        assert cursor.fetchone()[0] == SecurityEvent.objects.count()
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS  # the test's


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY export runs on PostgreSQL only")
def test_the_export_runs_with_the_configured_work_mem_and_restores_it(events, settings):
    """AUDIT_EXPORT_WORK_MEM is set (a bound value) before the COPY and reset after it: the
    connection, Django's persistent one, has its own value back."""
    from audit.models import SecurityEvent

    def work_mem() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW work_mem")
            return cursor.fetchone()[0]

    before = work_mem()
    settings.AUDIT_EXPORT_WORK_MEM = "96MB"
    statements: list[tuple[str, object]] = []

    def recorded(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(recorded):
        exported = b"".join(export_postgresql.csv_pieces(SecurityEvent.objects.order_by("-id")))
    assert exported.count(b"\n") >= SecurityEvent.objects.count()
    assert ("SELECT set_config('work_mem', %s, false)", ["96MB"]) in statements
    assert statements[-1][0] == "RESET work_mem"
    assert work_mem() == before


def test_the_work_mem_setting_takes_postgresql_sizes_only(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from config.env import env_pg_memory

    for good in ("64kB", "96MB", "1GB"):
        monkeypatch.setenv("PORTAL_TEST_WORK_MEM", good)
        assert env_pg_memory("PORTAL_TEST_WORK_MEM") == good
    for bad in ("1 GB", "1gb", "0MB", "32kB", "3000GB", "1GB'; RESET ALL; --", "-1"):
        monkeypatch.setenv("PORTAL_TEST_WORK_MEM", bad)
        with pytest.raises(ImproperlyConfigured, match="PORTAL_TEST_WORK_MEM"):
            env_pg_memory("PORTAL_TEST_WORK_MEM")
    monkeypatch.delenv("PORTAL_TEST_WORK_MEM")
    assert env_pg_memory("PORTAL_TEST_WORK_MEM") is None


@pytest.mark.parametrize("url", [CSV, JSONL])
def test_an_exported_event_can_be_verified_outside_the_database(as_user, superuser, org_a, technician_a, url, settings):
    """Each exported row carries its link (sequence, previous hash, key id, sealed time, hash):
    with the HMAC key alone, a reader recomputes every hash and every link from the file.
    Written from docs/audit.md ("Canonical content"), independently of audit.chain."""
    import hashlib
    import hmac
    from datetime import UTC

    from audit.chain import security_event_seal

    client = as_user(superuser)
    record(EventType.AUTH_LOGIN_FAILED, organization=org_a, actor=technician_a, method="x", nested={"b": [1, "é"]})
    record(EventType.AUTH_LOGOUT, at=T0 + timedelta(microseconds=120000), actor=technician_a)
    security_event_seal()
    response = client.get(url, {"event_type": "auth.*"})
    rows = sorted(csv_rows(response) if url == CSV else jsonl_rows(response), key=lambda r: int(r["sequence"]))
    assert {"auth.login_failed", "auth.logout"} <= {row["event_type"] for row in rows}

    def canonical_time(text: str) -> str:
        return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def integer(value):
        return None if value in (None, "") else int(value)

    previous = (None, None)
    for row in rows:
        content = {name: row[name] for name in export_columns() if name != "hash"}
        for name in ("id", "sequence", "actor_id", "organization_id"):
            content[name] = integer(content[name])
        for name in ("created_at", "sealed_at"):
            content[name] = canonical_time(content[name])
        if url == CSV:  # CSV has no null: an empty cell is an absent value here
            content["source_ip"] = content["source_ip"] or None
            content["details"] = json.loads(content["details"])
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        key = settings.AUDIT_HMAC_KEY
        assert row["hash"] == hmac.new(key, canonical, hashlib.sha256).hexdigest()
        if previous[0] == integer(row["sequence"]) - 1:
            assert row["previous_hash"] == previous[1]
        previous = (integer(row["sequence"]), row["hash"])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the streamed export runs on PostgreSQL only")
@pytest.mark.django_db(transaction=True)  # autocommit, as a web request's connection is
def test_an_abandoned_json_lines_download_cancels_its_query_and_leaves_the_connection_usable(monkeypatch):
    """More lines than the socket holds: the query is still running when the client goes
    away, so psycopg cancels it and drains what arrived; the connection is idle again, its
    settings reset, and the next query runs."""
    from audit.models import SecurityEvent

    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    SecurityEvent.objects.bulk_create(
        SecurityEvent(
            event_type=EventType.AUTH_LOGOUT,
            actor_kind="system",
            user_agent="x" * 400,
            details={"n": n},
            created_at=now + timedelta(microseconds=n),
        )
        for n in range(20_000)
    )
    monkeypatch.setattr(audit_export, "ROWS_PER_CHUNK", 50)
    pieces = export_postgresql.json_line_pieces(SecurityEvent.objects.order_by("-created_at", "-id"))
    first = next(pieces)
    assert first.count(b"\n") == 50
    pieces.close()
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting = reset_val FROM pg_settings WHERE name = 'enable_indexscan'")
        assert cursor.fetchone()[0]
    assert SecurityEvent.objects.count() == 20_000
