"""Turning a checked file into writes: what changes, then bulk inserts and updates in batches.

Bulk operations skip ``Person.save()``, so ``search_text`` and ``updated_at`` are set
here. People whose row matches the directory are not touched at all, which is why a
second import of the same file changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from django.db import connection
from django.db.models import Field

from accounts.imports.checks import Directory, ExistingPerson
from accounts.imports.parsing import PersonRow
from accounts.models import Organization, Person, User
from audit.events import EventType
from audit.recorder import security_event_record

BATCH_SIZE = 1000
CONTACT_FIELDS = ("email", "phone")
ANALYZE_AFTER_CREATING = 5000
_UPDATE_FIELDS = ["full_name", "email", "phone", "department", "manager", "privileged", "search_text", "updated_at"]


@dataclass(slots=True)
class Change:
    existing: ExistingPerson
    row: PersonRow
    fields: tuple[str, ...]

    @property
    def contact_fields(self) -> list[str]:
        return [f for f in CONTACT_FIELDS if f in self.fields]


@dataclass(slots=True)
class Plan:
    creates: list[PersonRow]
    changes: list[Change]
    unchanged: int
    not_in_file: int

    @property
    def contact_changes(self) -> list[Change]:
        return [c for c in self.changes if c.contact_fields]


def plan_import(rows: list[PersonRow], directory: Directory) -> Plan:
    """Which rows are new, which change someone (and which fields), and which match already."""
    plan = Plan(creates=[], changes=[], unchanged=0, not_in_file=0)
    for row in rows:
        existing = directory.by_employee_id.get(row.employee_id)
        if existing is None:
            plan.creates.append(row)
        elif fields := _changed_fields(existing, row, directory):
            plan.changes.append(Change(existing, row, fields))
        else:
            plan.unchanged += 1
    plan.not_in_file = len(directory.by_employee_id) - len(plan.changes) - plan.unchanged
    return plan


def _changed_fields(existing: ExistingPerson, row: PersonRow, directory: Directory) -> tuple[str, ...]:
    fields = []
    if existing.full_name != row.full_name:
        fields.append("full_name")
    if existing.email.lower() != row.email:  # stored emails are compared as the constraint does
        fields.append("email")
    if existing.phone != row.phone:
        fields.append("phone")
    if existing.department != row.department:
        fields.append("department")
    if directory.manager_employee_id(existing) != row.manager_employee_id:
        fields.append("manager")
    if existing.privileged != row.privileged:
        fields.append("privileged")
    return tuple(fields)


def write_plan(
    *,
    actor: User | None,
    organization: Organization,
    plan: Plan,
    directory: Directory,
    now: datetime,
    step: Callable[[int], None],
) -> None:
    """Apply the plan; call inside the import's transaction. ``step(n)`` reports n more rows written.

    Emails that move are cleared first so that two people swapping addresses never
    meet the unique constraint halfway. New people are created managers first, so
    each gets its manager in the same insert and no second pass is needed.
    """
    _clear_moving_emails(plan.changes)
    ids = {employee_id: person.pk for employee_id, person in directory.by_employee_id.items()}
    _create_people(organization, plan.creates, ids, now, step)
    _refresh_planner_statistics(len(plan.creates))
    updated = _update_people(organization, plan.changes, ids, now, step)
    for person, change in zip(updated, plan.changes, strict=True):
        if change.contact_fields:
            security_event_record(
                event_type=EventType.DIRECTORY_PERSON_CONTACT_CHANGED,
                actor=actor,
                organization=organization,
                target=person,
                details={"fields": change.contact_fields, "source": "directory_import"},
            )
        if "privileged" in change.fields:
            # Privilege decides how hard a caller is verified: each grant or removal is traceable.
            security_event_record(
                event_type=EventType.DIRECTORY_PERSON_UPDATED,
                actor=actor,
                organization=organization,
                target=person,
                details={"fields": ["privileged"], "privileged": change.row.privileged, "source": "directory_import"},
            )


def _batches(items: list, size: int = BATCH_SIZE) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _clear_moving_emails(changes: list[Change]) -> None:
    moving = [c.existing.pk for c in changes if "email" in c.fields and c.existing.email]
    for batch in _batches(moving):
        Person.objects.filter(pk__in=batch).update(email="")


def _person(organization: Organization, row: PersonRow, manager_id: int | None, now: datetime) -> Person:
    person = Person(
        organization=organization,
        employee_id=row.employee_id,
        full_name=row.full_name,
        email=row.email,
        phone=row.phone,
        department=row.department,
        manager_id=manager_id,
        privileged=row.privileged,
        updated_at=now,
    )
    person.search_text = person.build_search_text()
    return person


def _create_people(
    organization: Organization,
    creates: list[PersonRow],
    ids: dict[str, int],
    now: datetime,
    step: Callable[[int], None],
) -> dict[str, int]:
    """Insert new people, managers before their reports, so each row is written once, complete.

    Returns the new people's ids by employee id.
    """
    created: dict[str, int] = {}
    for layer in _manager_first_layers(creates):
        for batch in _batches(layer):
            people = [_person(organization, row, ids.get(row.manager_employee_id), now) for row in batch]
            for person in people:
                person.created_at = now
            Person.objects.bulk_create(people)
            if any(p.pk is None for p in people):  # this database cannot return ids from a bulk insert
                found = Person.objects.filter(
                    organization=organization, employee_id__in=[p.employee_id for p in people]
                )
                new_ids = dict(found.values_list("employee_id", "pk"))
            else:
                new_ids = {p.employee_id: p.pk for p in people}
            ids.update(new_ids)
            created.update(new_ids)
            step(len(batch))
    return created


def _refresh_planner_statistics(created: int) -> None:
    """ANALYZE the table after a bulk load on PostgreSQL, as its manual advises.

    Otherwise the planner may still believe the table is (nearly) empty, and the
    deferred foreign-key checks that run at commit would scan the whole table once
    per new row: minutes instead of seconds for a first import of 100,000 people.
    ANALYZE counts the rows this transaction inserted.
    """
    if created >= ANALYZE_AFTER_CREATING and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Person._meta.db_table)}")


def _manager_first_layers(creates: list[PersonRow]) -> list[list[PersonRow]]:
    """New people grouped by how many new managers sit above them, top first.

    Everyone's manager is then either already in the directory or in an earlier
    group. The checks have ruled out cycles, so every chain ends.
    """
    new = {row.employee_id: row for row in creates}
    depth: dict[str, int] = {}
    for row in creates:
        chain, employee_id = [], row.employee_id
        while employee_id in new and employee_id not in depth:
            chain.append(employee_id)
            employee_id = new[employee_id].manager_employee_id
        level = depth.get(employee_id, -1)
        for member in reversed(chain):
            level += 1
            depth[member] = level
    layers: list[list[PersonRow]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for row in creates:
        layers[depth[row.employee_id]].append(row)
    return layers


def _update_people(
    organization: Organization, changes: list[Change], ids: dict[str, int], now: datetime, step: Callable[[int], None]
) -> list[Person]:
    """Rewrite every field of changed people; only contact changes move ``contact_changed_at``."""
    people = []
    for change in changes:
        row = change.row
        person = _person(organization, row, ids.get(row.manager_employee_id), now)
        person.pk = change.existing.pk
        if change.existing.email.lower() == row.email:
            person.email = change.existing.email
        person.contact_changed_at = now if change.contact_fields else None
        people.append(person)
    with_contact = [p for p in people if p.contact_changed_at is not None]
    without_contact = [p for p in people if p.contact_changed_at is None]
    for group, fields in ((with_contact, [*_UPDATE_FIELDS, "contact_changed_at"]), (without_contact, _UPDATE_FIELDS)):
        for batch in _batches(group):
            _update_by_pk(batch, fields)
            step(len(batch))
    return people


def _update_by_pk(people: list[Person], fields: list[str]) -> None:
    """One prepared ``UPDATE ... WHERE id = %s`` per person, sent with executemany.

    Django's bulk_update builds a CASE expression with a branch per row for every
    field, which costs about half a millisecond a row in Python before the database
    sees it; a single-row UPDATE repeated through executemany is many times faster on
    SQLite and on PostgreSQL (psycopg sends it as a pipeline). Values go through each
    field's own database preparation, as the ORM would do.
    """
    meta, quote = Person._meta, connection.ops.quote_name
    model_fields = [cast(Field, meta.get_field(name)) for name in fields]
    assignments = ", ".join(f"{quote(str(field.column))} = %s" for field in model_fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote('id')} = %s"  # noqa: S608
    params = [
        [field.get_db_prep_save(getattr(person, field.attname), connection) for field in model_fields] + [person.pk]
        for person in people
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
