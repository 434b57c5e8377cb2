"""accounts.rows: written-out reads give the instances the ORM gives (values converted for
the database in use, relations cached both ways, a missing row remembered as missing), and
lock the first table's row where the database can."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Person
from accounts.rows import (
    JoinedRead,
    ModelColumns,
    column_values,
    execute,
    insert,
    placeholders,
    statement_cursor,
)
from tests.accounts.factories import OrganizationFactory, PersonFactory
from validation.models import PersonVerificationState

PERSON_WITH_STATE = JoinedRead(
    Person,
    "p",
    ("p", "organization", "o"),
    ("p", "manager", "m"),
    ("p", "verification_state", "s"),
)


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


@pytest.mark.django_db
def test_a_joined_read_equals_select_related(django_assert_num_queries):
    org = OrganizationFactory()
    manager = PersonFactory(organization=org)
    person = PersonFactory(organization=org, manager=manager, privileged=True)
    locked = timezone.now()
    PersonVerificationState.objects.create(person=person, consecutive_failures=3, locked_at=locked, locked_reason="x")
    expected = type(person).objects.select_related("organization", "manager", "verification_state").get(pk=person.pk)
    with django_assert_num_queries(1):
        got = PERSON_WITH_STATE.fetch("p.id = %s", [person.pk])
    with django_assert_num_queries(0):
        assert _fields(got) == _fields(expected)
        assert _fields(got.organization) == _fields(expected.organization)
        assert _fields(got.manager) == _fields(expected.manager)
        assert _fields(got.verification_state) == _fields(expected.verification_state)
        assert got.verification_state.person is got  # both sides of the one-to-one
        assert got.verification_state.locked_at == locked and locked.tzinfo is not None
        assert got._state.adding is False and got._state.db == "default"


@pytest.mark.django_db
def test_missing_rows_cost_no_query_later(django_assert_num_queries):
    person = PersonFactory()
    got = PERSON_WITH_STATE.fetch("p.id = %s", [person.pk])
    with django_assert_num_queries(0):
        assert got.manager is None
        with pytest.raises(type(person).verification_state.RelatedObjectDoesNotExist):
            got.verification_state  # noqa: B018 - the access is the test
    assert PERSON_WITH_STATE.fetch("p.id = %s", [person.pk + 1000]) is None


@pytest.mark.django_db
def test_fetch_all_keeps_the_order_asked_for():
    org = OrganizationFactory()
    people = [PersonFactory(organization=org, full_name=name) for name in ("Cy", "Al", "Bo")]
    got = PERSON_WITH_STATE.fetch_all("p.organization_id = %s ORDER BY p.full_name", [org.pk])
    assert [p.full_name for p in got] == ["Al", "Bo", "Cy"]
    assert {p.pk for p in got} == {p.pk for p in people}


@pytest.mark.django_db
def test_a_read_with_children_is_one_statement_in_the_order_asked_for(django_assert_num_queries):
    org = OrganizationFactory()
    manager = PersonFactory(organization=org)
    reports = [PersonFactory(organization=org, manager=manager, full_name=name) for name in ("Cy", "Al", "Bo")]
    alone = PersonFactory(organization=org)
    children, on = ModelColumns(Person, "c"), "c.manager_id = p.id"
    with django_assert_num_queries(1):
        got, found = PERSON_WITH_STATE.fetch_with_children(children, on, "p.id = %s", [manager.pk], order="c.full_name")
    assert _fields(got) == _fields(type(manager).objects.get(pk=manager.pk))
    assert [c.full_name for c in found] == ["Al", "Bo", "Cy"]
    expected = sorted(reports, key=lambda c: c.full_name)
    assert [_fields(c) for c in found] == [_fields(type(c).objects.get(pk=c.pk)) for c in expected]
    got, found = PERSON_WITH_STATE.fetch_with_children(children, on, "p.id = %s", [alone.pk], order="c.full_name")
    assert got.pk == alone.pk and found == []  # no children: one row, NULLs on their side
    nothing = PERSON_WITH_STATE.fetch_with_children(children, on, "p.id = %s", [alone.pk + 1000], order="c.id")
    assert nothing == (None, [])


@pytest.mark.django_db
def test_lock_takes_the_first_tables_row_where_the_database_can():
    sql = PERSON_WITH_STATE.sql("p.id = %s", lock=True)
    if connection.vendor == "postgresql":
        assert sql.endswith(" FOR UPDATE OF p")
    else:
        assert "FOR UPDATE" not in sql
    assert "FOR UPDATE" not in PERSON_WITH_STATE.sql("p.id = %s")
    person = PersonFactory()
    with transaction.atomic():
        assert PERSON_WITH_STATE.fetch("p.id = %s", [person.pk], lock=True).pk == person.pk


def test_placeholders_never_make_an_empty_list():
    assert placeholders(0) == "%s"
    assert placeholders(3) == "%s, %s, %s"


@pytest.mark.django_db
def test_a_join_below_a_missing_row_is_left_too():
    """A person without a manager is still found when the manager's organisation is joined
    too (an inner join below a LEFT JOIN would drop the row, as select_related never does)."""
    read = JoinedRead(Person, "p", ("p", "manager", "m"), ("m", "organization", "mo"))
    person = PersonFactory()
    got = read.fetch("p.id = %s", [person.pk])
    assert got is not None and got.manager is None
    with_manager = PersonFactory(organization=person.organization, manager=person)
    assert read.fetch("p.id = %s", [with_manager.pk]).manager.organization == person.organization


@pytest.mark.django_db
def test_an_insert_runs_its_other_statement_in_the_same_one_where_the_database_can(django_assert_num_queries):
    person, other = PersonFactory(), PersonFactory()
    PersonVerificationState.objects.create(person=other, consecutive_failures=3)
    state = PersonVerificationState(person=person, consecutive_failures=1)
    table = PersonVerificationState._meta.db_table
    also = (f"UPDATE {table} SET consecutive_failures = consecutive_failures + 1 WHERE person_id = %s", [other.pk])  # noqa: S608
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
        insert(state, also=also)
    assert PersonVerificationState.objects.get(pk=state.pk).person_id == person.pk
    assert PersonVerificationState.objects.get(person=other).consecutive_failures == 4


@pytest.mark.django_db
def test_written_out_statements_share_one_cursor_while_the_connection_lives():
    with statement_cursor() as first:
        first.execute("SELECT 1")
    with statement_cursor() as second:
        second.execute("SELECT 2")
        assert second.fetchone() == (2,)
    assert second is first
    assert column_values("SELECT %s", [3]) == [3]


@pytest.mark.django_db
def test_while_queries_are_logged_each_statement_is_counted_on_a_cursor_of_its_own(django_assert_num_queries):
    column_values("SELECT 1", [])  # a kept cursor exists
    with django_assert_num_queries(2) as captured:
        with statement_cursor() as first:
            first.execute("SELECT 1")
        with statement_cursor() as second:
            second.execute("SELECT 2")
    assert first is not second
    assert [query["sql"] for query in captured.captured_queries] == ["SELECT 1", "SELECT 2"]


@pytest.mark.django_db
def test_execute_wrappers_see_every_statement_on_the_kept_cursor():
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    column_values("SELECT 1", [])
    with connection.execute_wrapper(wrapper):
        column_values("SELECT 2", [])
        execute(f"UPDATE {Person._meta.db_table} SET full_name = full_name WHERE id = %s", [0])
    assert len(seen) == 2


@pytest.mark.django_db
def test_an_error_is_djangos_and_changes_nothing_and_the_cursor_goes_on():
    person = PersonFactory(full_name="Ada Example")
    table = Person._meta.db_table
    column_values("SELECT 1", [])
    with pytest.raises(IntegrityError), transaction.atomic():
        execute(f"UPDATE {table} SET full_name = NULL WHERE id = %s", [person.pk])
    assert column_values(f"SELECT full_name FROM {table} WHERE id = %s", [person.pk]) == ["Ada Example"]


@pytest.mark.django_db(transaction=True)
def test_a_closed_connection_gets_a_new_cursor():
    with statement_cursor() as kept:
        kept.execute("SELECT 1")
    connection.close()
    connection.ensure_connection()  # as any other query would reconnect first
    assert column_values("SELECT %s", [4]) == [4]
    with statement_cursor() as new:
        assert new is not kept


@pytest.mark.django_db
def test_a_new_request_gets_a_new_cursor_where_the_connection_is_health_checked():
    with statement_cursor() as kept:
        kept.execute("SELECT 1")
    enabled = connection.health_check_enabled  # on PostgreSQL (settings); SQLite has none
    connection.health_check_enabled = True
    try:
        connection.health_check_done = False  # what Django does when a request starts
        with statement_cursor() as new:
            new.execute("SELECT 1")
        assert connection.health_check_done  # the check ran, in connection.cursor()
    finally:
        connection.health_check_enabled = enabled
    assert new is not kept


@pytest.mark.django_db
def test_a_connection_shared_between_threads_gets_a_cursor_per_statement():
    column_values("SELECT 1", [])
    connection.inc_thread_sharing()
    try:
        with statement_cursor() as first:
            first.execute("SELECT 1")
        with statement_cursor() as second:
            second.execute("SELECT 1")
    finally:
        connection.dec_thread_sharing()
    assert first is not second
