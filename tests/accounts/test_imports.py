import json

import pytest
import time_machine
from django.test import override_settings

from accounts.imports import ImportFileError, RowError, decode_upload, people_import, writing
from accounts.models import Person
from audit.events import EventType
from audit.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory, PersonFactory

pytestmark = pytest.mark.django_db

HEADER = "employee_id,full_name,email,phone,department,manager_employee_id,privileged"


def csv_of(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


VALID = csv_of(
    "E1,Ada Boss,Ada@Client.example,(202) 555-0101,Board,,yes",
    "E2,Bob Middle,bob@client.example,+44 20 7946 0018,IT,E1,false",
    "E3,Cy Report,,,IT,E2,",
)


def run(organization, text, *, dry_run=False, actor=None, progress=None):
    return people_import(actor=actor, organization=organization, csv_text=text, dry_run=dry_run, progress=progress)


def problems(result):
    return {(e.row, e.field) for e in result.errors}


def test_valid_file_creates_people_with_managers_and_e164_phones():
    org = OrganizationFactory()
    result = run(org, VALID)
    assert result.ok and result.applied
    assert (result.rows, result.created, result.updated, result.unchanged) == (3, 3, 0, 0)
    ada, bob, cy = (Person.objects.get(organization=org, employee_id=e) for e in ("E1", "E2", "E3"))
    assert ada.phone == "+12025550101" and ada.email == "ada@client.example" and ada.privileged
    assert bob.phone == "+442079460018" and bob.manager == ada and not bob.privileged
    assert cy.manager == bob and cy.phone == "" and cy.email == ""
    assert ada.search_text == "ada boss ada@client.example e1 +12025550101"
    assert ada.contact_changed_at is None


def test_header_is_case_insensitive_in_any_order_and_a_bom_is_accepted():
    org = OrganizationFactory()
    header = "Privileged, DEPARTMENT ,Employee_ID,Full_Name,EMAIL,phone,manager_employee_id"
    text = "\ufeff" + csv_of("no,IT,E9,Eve Nine,,,", header=header)
    result = run(org, text)
    assert result.ok, result.errors
    assert Person.objects.get(organization=org, employee_id="E9").department == "IT"


def test_every_bad_row_is_reported_and_nothing_is_imported():
    org = OrganizationFactory()
    text = csv_of(
        "E1,Good Person,good@client.example,+12025550101,IT,,",  # row 2: fine
        "E2,Bad Phone,,12345,IT,,",  # row 3
        "E3,Unknown Manager,,,IT,NOBODY,",  # row 4
        "E4,Dup Mail A,same@client.example,,IT,,",  # row 5
        "E5,Dup Mail B,SAME@client.example,,IT,,",  # row 6
        "E1,Dup Id,,,IT,,",  # row 7
        "E7,,,,IT,,",  # row 8: missing name
        "bad id!,Bad Id,,,IT,,",  # row 9
        "E9,Bad Mail,not-an-email,,IT,,",  # row 10
        "E10,Bad Flag,,,IT,,maybe",  # row 11
        "E11,Too Few Values",  # row 12
        "E12,Two Problems,x@,555,IT,,",  # row 13
        "E13,Loop A,,,IT,E14,",  # row 14
        "E14,Loop B,,,IT,E13,",  # row 15
        "E15,Own Boss,,,IT,E15,",  # row 16
    )
    result = run(org, text)
    assert not result.applied
    assert problems(result) == {
        (2, "employee_id"),
        (3, "phone"),
        (4, "manager_employee_id"),
        (5, "email"),
        (6, "email"),
        (7, "employee_id"),
        (8, "full_name"),
        (9, "employee_id"),
        (10, "email"),
        (11, "privileged"),
        (12, "row"),
        (13, "email"),
        (13, "phone"),
        (14, "manager_employee_id"),
        (15, "manager_employee_id"),
        (16, "manager_employee_id"),
    }
    assert [e.row for e in result.errors] == sorted(e.row for e in result.errors)
    by_row = {(e.row, e.field): e.message for e in result.errors}
    assert by_row[(7, "employee_id")] == "employee id E1 is also on row 2"
    assert "unknown manager NOBODY" in by_row[(4, "manager_employee_id")]
    assert by_row[(8, "full_name")] == "is missing"
    assert str(result.errors[0]) == "row 2: employee_id: employee id E1 is also on row 7"
    assert not Person.objects.filter(organization=org).exists()


def test_unknown_and_missing_columns_are_reported_on_the_header_row():
    org = OrganizationFactory()
    result = run(org, csv_of("E1,Ann,IT,x", header="employee_id,full_name,department,nickname"))
    assert problems(result) == {
        (1, "nickname"),
        (1, "email"),
        (1, "phone"),
        (1, "manager_employee_id"),
        (1, "privileged"),
    }
    assert {e.message for e in result.errors} == {"unknown column", "missing column"}
    assert not Person.objects.exists()


def test_empty_file_is_rejected():
    result = run(OrganizationFactory(), "")
    assert result.errors == [RowError(1, "header", "row 1 is empty; it must name the columns")]


def test_every_duplicate_names_the_other_rows():
    result = run(OrganizationFactory(), csv_of("E1,A,,,,,", "E1,B,,,,,", "E1,C,,,,,"))
    assert [str(e) for e in result.errors] == [
        "row 2: employee_id: employee id E1 is also on rows 3, 4",
        "row 3: employee_id: employee id E1 is also on rows 2, 4",
        "row 4: employee_id: employee id E1 is also on rows 2, 3",
    ]


def test_unreadable_csv_is_reported_with_its_row():
    huge = "x" * 200_000
    result = run(OrganizationFactory(), csv_of("E1,Ann,,,,,", f'E2,"{huge}",,,,,'))
    assert len(result.errors) == 1
    assert (result.errors[0].row, result.errors[0].field) == (3, "row")
    assert "cannot be read as CSV" in result.errors[0].message
    assert not Person.objects.exists()


def test_manager_cycle_is_rejected_naming_every_row_in_it():
    org = OrganizationFactory()
    text = csv_of("A,Ann,,,,C,", "B,Ben,,,,A,", "C,Cat,,,,B,", "D,Dan,,,,A,", "S,Sam,,,,S,")
    result = run(org, text)
    assert problems(result) == {
        (2, "manager_employee_id"),
        (3, "manager_employee_id"),
        (4, "manager_employee_id"),
        (6, "manager_employee_id"),
    }
    messages = {e.row: e.message for e in result.errors}
    assert messages[2] == "manager cycle A → C → B → A (row 2, row 4, row 3)"
    assert messages[6] == "S cannot be their own manager"
    assert not Person.objects.exists()


def test_cycle_through_people_already_in_the_directory_is_rejected():
    org = OrganizationFactory()
    boss = PersonFactory(organization=org, employee_id="BOSS")
    PersonFactory(organization=org, employee_id="MID", manager=boss)
    result = run(org, csv_of("BOSS,Boss,,,,NEW,", "NEW,New Hire,,,,MID,"))
    assert problems(result) == {(2, "manager_employee_id"), (3, "manager_employee_id")}
    assert "MID in the directory" in result.errors[0].message
    assert Person.objects.get(employee_id="BOSS").manager is None


def test_email_of_someone_in_the_directory_but_not_in_the_file_is_a_conflict():
    org = OrganizationFactory()
    PersonFactory(organization=org, employee_id="OLD", email="Taken@Client.example")
    result = run(org, csv_of("E1,Ann,taken@client.example,,,,"))
    assert result.errors == [
        RowError(2, "email", "taken@client.example already belongs to employee OLD, who is not in this file")
    ]


def test_emails_can_move_and_swap_between_people_in_the_file():
    org = OrganizationFactory()
    PersonFactory(organization=org, employee_id="A", email="a@client.example")
    PersonFactory(organization=org, employee_id="B", email="b@client.example")
    result = run(org, csv_of("A,Ann,b@client.example,,,,", "B,Ben,a@client.example,,,,", "C,Cat,,,,,"))
    assert result.ok and result.applied, result.errors
    assert Person.objects.get(employee_id="A").email == "b@client.example"
    assert Person.objects.get(employee_id="B").email == "a@client.example"


def test_managers_already_in_the_directory_are_found_and_others_left_alone():
    org = OrganizationFactory()
    boss = PersonFactory(organization=org, employee_id="BOSS")
    PersonFactory(organization=org, employee_id="LEFT")
    other_org_person = PersonFactory(employee_id="E1")
    result = run(org, csv_of("E1,Ann,,,,BOSS,"))
    assert (result.created, result.not_in_file) == (1, 2)
    assert Person.objects.get(organization=org, employee_id="E1").manager == boss
    assert Person.objects.filter(organization=org).count() == 3
    other_org_person.refresh_from_db()
    assert other_org_person.manager is None


def test_reimporting_the_same_file_changes_nothing():
    org = OrganizationFactory()
    with time_machine.travel("2026-01-01 09:00Z", tick=False):
        first = run(org, VALID)
    before = {p.employee_id: (p.updated_at, p.search_text) for p in Person.objects.filter(organization=org)}
    events_before = SecurityEvent.objects.count()
    with time_machine.travel("2026-02-01 09:00Z", tick=False):
        second = run(org, VALID)
    assert first.created == 3
    assert second.counts() == {
        "rows": 3,
        "created": 0,
        "updated": 0,
        "unchanged": 3,
        "contact_changed": 0,
        "not_in_file": 0,
    }
    after = {p.employee_id: (p.updated_at, p.search_text) for p in Person.objects.filter(organization=org)}
    assert after == before
    assert not SecurityEvent.objects.filter(event_type=EventType.DIRECTORY_PERSON_CONTACT_CHANGED).exists()
    assert SecurityEvent.objects.count() == events_before + 1  # only import_completed


def test_phone_change_sets_contact_changed_at_and_records_an_event_without_values():
    org = OrganizationFactory()
    run(org, VALID)
    changed = VALID.replace("(202) 555-0101", "202-555-0199")
    with time_machine.travel("2026-03-01 10:00Z", tick=False):
        result = run(org, changed)
        ada = Person.objects.get(organization=org, employee_id="E1")
        assert ada.contact_changed_at.isoformat() == "2026-03-01T10:00:00+00:00"
        assert ada.updated_at == ada.contact_changed_at
    assert (result.updated, result.contact_changed, result.unchanged) == (1, 1, 2)
    assert ada.phone == "+12025550199" and "+12025550199" in ada.search_text
    event = SecurityEvent.objects.get(event_type=EventType.DIRECTORY_PERSON_CONTACT_CHANGED)
    assert event.target_id == str(ada.pk) and event.organization_id == org.pk
    assert event.details == {"fields": ["phone"], "source": "directory_import"}
    assert Person.objects.get(employee_id="E2").contact_changed_at is None


def test_email_change_is_a_contact_change_but_a_name_change_is_not():
    org = OrganizationFactory()
    run(org, VALID)
    text = VALID.replace("bob@client.example", "robert@client.example").replace("Cy Report", "Cyrus Report")
    result = run(org, text)
    assert (result.updated, result.contact_changed) == (2, 1)
    assert Person.objects.get(employee_id="E3").contact_changed_at is None
    assert Person.objects.get(employee_id="E3").full_name == "Cyrus Report"
    event = SecurityEvent.objects.get(event_type=EventType.DIRECTORY_PERSON_CONTACT_CHANGED)
    assert event.details["fields"] == ["email"]


def test_existing_email_in_other_case_counts_as_unchanged():
    org = OrganizationFactory()
    PersonFactory(
        organization=org, employee_id="E1", full_name="Ann", email="Ann@Client.example", phone="", department=""
    )
    result = run(org, csv_of("E1,Ann,ann@client.example,,,,"))
    assert result.unchanged == 1
    assert Person.objects.get(employee_id="E1").email == "Ann@Client.example"


def test_dry_run_reports_counts_and_writes_nothing():
    org = OrganizationFactory()
    PersonFactory(organization=org, employee_id="E1", full_name="Old Name")
    events_before = SecurityEvent.objects.count()
    result = run(org, VALID, dry_run=True)
    assert result.ok and not result.applied
    assert (result.created, result.updated, result.contact_changed) == (2, 1, 1)
    assert Person.objects.filter(organization=org).count() == 1
    assert Person.objects.get(employee_id="E1").full_name == "Old Name"
    assert SecurityEvent.objects.count() == events_before


def test_dry_run_of_a_bad_file_lists_the_errors():
    result = run(OrganizationFactory(), csv_of("E1,,,,,,"), dry_run=True)
    assert problems(result) == {(2, "full_name")}


def test_import_events_hold_counts_and_no_row_data():
    org = OrganizationFactory()
    run(org, VALID)
    run(org, VALID.replace("Ada Boss", ""))
    completed = SecurityEvent.objects.get(event_type=EventType.DIRECTORY_IMPORT_COMPLETED)
    assert completed.details == {
        "rows": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "contact_changed": 0,
        "not_in_file": 0,
        "dry_run": False,
    }
    rejected = SecurityEvent.objects.get(event_type=EventType.DIRECTORY_IMPORT_REJECTED)
    assert rejected.details == {"rows": 3, "error_count": 1, "rows_with_errors": 1}
    for event in SecurityEvent.objects.all():
        dumped = json.dumps(event.details)
        assert "client.example" not in dumped and "+1202" not in dumped and "Ada" not in dumped


def test_progress_is_reported_steadily_up_to_the_row_count():
    org = OrganizationFactory()
    rows = [f"P{i},Person {i},,,,{'P0' if i else ''}," for i in range(2500)]
    calls = []
    result = run(org, csv_of(*rows), progress=lambda done, total: calls.append((done, total)))
    assert result.created == 2500
    assert calls[0] == (0, 2500) and calls[-1] == (2500, 2500)
    assert len(calls) > 4
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert Person.objects.filter(manager__employee_id="P0").count() == 2499


def test_upload_that_is_not_utf8_or_too_big_is_refused():
    with pytest.raises(ImportFileError, match="not UTF-8"):
        decode_upload("employee_id,full_name\nE1,Zoë\n".encode("latin-1"))
    with override_settings(DIRECTORY_IMPORT_MAX_BYTES=10), pytest.raises(ImportFileError, match="limit is 10 bytes"):
        decode_upload(b"x" * 11)
    assert decode_upload("\ufeffa,b".encode()) == "a,b"


def test_large_first_import_refreshes_planner_statistics_in_the_same_transaction(monkeypatch):
    monkeypatch.setattr(writing, "ANALYZE_AFTER_CREATING", 2)
    org = OrganizationFactory()
    result = run(org, VALID)
    assert result.applied and Person.objects.filter(organization=org).count() == 3


def test_privileged_flag_change_is_recorded_per_person():
    org = OrganizationFactory()
    run(org, VALID)
    run(org, VALID.replace("IT,E1,false", "IT,E1,true"))
    bob = Person.objects.get(organization=org, employee_id="E2")
    assert bob.privileged
    event = SecurityEvent.objects.get(event_type=EventType.DIRECTORY_PERSON_UPDATED)
    assert event.target_id == str(bob.pk)
    assert event.details == {"fields": ["privileged"], "privileged": True, "source": "directory_import"}


def test_rejected_real_import_writes_nothing_and_records_the_rejection():
    org = OrganizationFactory()
    result = run(org, csv_of("E1,Ada,not-an-email,,IT,,"))
    assert result.errors and not result.applied
    assert not Person.objects.filter(organization=org).exists()
    assert SecurityEvent.objects.filter(event_type=EventType.DIRECTORY_IMPORT_REJECTED).count() == 1
