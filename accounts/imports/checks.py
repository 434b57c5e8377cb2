"""Checks across rows and against the organisation's directory as it is now.

The file is matched to the directory by employee id. The final directory is the
file's rows plus the people already there who are not in the file, so uniqueness
and the manager graph are checked over that union.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from accounts.imports.parsing import PersonRow
from accounts.imports.results import RowError
from accounts.models import Organization, Person


@dataclass(slots=True)
class ExistingPerson:
    pk: int
    employee_id: str
    full_name: str
    email: str
    phone: str
    department: str
    manager_id: int | None
    privileged: bool


class Directory:
    """A read-only snapshot of one organisation's people, keyed for the checks and the diff."""

    FIELDS = ("pk", "employee_id", "full_name", "email", "phone", "department", "manager_id", "privileged")

    def __init__(self, people: list[ExistingPerson]):
        self.by_employee_id = {p.employee_id: p for p in people}
        self.employee_id_by_pk = {p.pk: p.employee_id for p in people}
        self.owner_of_email = {p.email.lower(): p.employee_id for p in people if p.email}

    @classmethod
    def load(cls, organization: Organization) -> Directory:
        rows = Person.objects.filter(organization=organization).values_list(*cls.FIELDS)
        return cls([ExistingPerson(*row) for row in rows.iterator(chunk_size=5000)])

    def manager_employee_id(self, person: ExistingPerson) -> str:
        return self.employee_id_by_pk.get(person.manager_id, "") if person.manager_id else ""


def check_rows(rows: list[PersonRow], directory: Directory) -> list[RowError]:
    """Every cross-row problem: duplicates, email conflicts, unknown managers and manager cycles."""
    first_row_of = _first_rows(rows)
    errors = _duplicates(rows, "employee_id", "employee id")
    errors += _duplicates(rows, "email", "email")
    errors += _email_conflicts(rows, directory, first_row_of)
    errors += _unknown_managers(rows, directory, first_row_of)
    errors += _manager_cycles(rows, directory, first_row_of)
    return errors


def _first_rows(rows: list[PersonRow]) -> dict[str, int]:
    first: dict[str, int] = {}
    for row in rows:
        if row.employee_id:
            first.setdefault(row.employee_id, row.row)
    return first


def _duplicates(rows: list[PersonRow], field: str, label: str) -> list[RowError]:
    """Every row sharing a value with another row is reported, naming the other rows."""
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        value = getattr(row, field)
        if value:
            rows_of[value].append(row.row)
    errors = []
    for value, numbers in rows_of.items():
        if len(numbers) > 1:
            for number in numbers:
                others = [str(n) for n in numbers if n != number]
                where = f"row {others[0]}" if len(others) == 1 else f"rows {', '.join(others)}"
                errors.append(RowError(number, field, f"{label} {value} is also on {where}"))
    return errors


def _email_conflicts(rows: list[PersonRow], directory: Directory, in_file: dict[str, int]) -> list[RowError]:
    """An email already held by someone in the directory who is not in the file would stay theirs."""
    errors = []
    for row in rows:
        owner = directory.owner_of_email.get(row.email) if row.email else None
        if owner is not None and owner != row.employee_id and owner not in in_file:
            message = f"{row.email} already belongs to employee {owner}, who is not in this file"
            errors.append(RowError(row.row, "email", message))
    return errors


def _unknown_managers(rows: list[PersonRow], directory: Directory, in_file: dict[str, int]) -> list[RowError]:
    errors = []
    for row in rows:
        manager = row.manager_employee_id
        if manager and manager not in in_file and manager not in directory.by_employee_id:
            message = f"unknown manager {manager}: not in this file nor in the directory"
            errors.append(RowError(row.row, "manager_employee_id", message))
    return errors


def _manager_cycles(rows: list[PersonRow], directory: Directory, in_file: dict[str, int]) -> list[RowError]:
    """Follow each person's chain of managers; a chain that comes back to itself is a cycle.

    Each person has at most one manager, so every chain is walked once overall.
    """
    manager_in_file = {
        r.employee_id: r.manager_employee_id for r in rows if r.employee_id and in_file[r.employee_id] == r.row
    }

    def manager_of(employee_id: str) -> str:
        if employee_id in manager_in_file:
            return manager_in_file[employee_id]
        existing = directory.by_employee_id.get(employee_id)
        return directory.manager_employee_id(existing) if existing else ""

    errors: list[RowError] = []
    finished: set[str] = set()
    for start in manager_in_file:
        path: dict[str, int] = {}
        node = start
        while node and node not in finished and node not in path:
            path[node] = len(path)
            node = manager_of(node)
        if node in path:
            cycle = list(path)[path[node] :]
            errors += _cycle_errors(cycle, in_file)
        finished.update(path)
    return errors


def _cycle_errors(cycle: list[str], in_file: dict[str, int]) -> list[RowError]:
    if not any(e in in_file for e in cycle):
        return []  # already in the directory before this file; the file cannot fix or worsen it
    if len(cycle) == 1:
        return [RowError(in_file[cycle[0]], "manager_employee_id", f"{cycle[0]} cannot be their own manager")]
    chain = " → ".join([*cycle, cycle[0]])
    where = ", ".join(f"row {in_file[e]}" if e in in_file else f"{e} in the directory" for e in cycle)
    message = f"manager cycle {chain} ({where})"
    return [RowError(in_file[e], "manager_employee_id", message) for e in cycle if e in in_file]
