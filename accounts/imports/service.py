"""The directory import service: check the whole file, then write it in one transaction."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from accounts.imports.checks import Directory, check_rows
from accounts.imports.parsing import COLUMNS, PersonRow, check_header, parse_row, read_records
from accounts.imports.results import ImportResult, RowError
from accounts.imports.writing import Plan, plan_import, write_plan
from accounts.models import Organization, User
from audit.events import EventType
from audit.recorder import security_event_record

ProgressCallback = Callable[[int, int], None]
PROGRESS_EVERY = 1000


class _Progress:
    """Reports one steady count from 0 to the number of data rows.

    On a real import, checking covers the first half and writing the second, so
    the count never goes back and ends at ``(total, total)``.
    """

    def __init__(self, callback: ProgressCallback | None, total: int, *, writing_follows: bool):
        self.callback, self.total = callback, total
        self.checking_end = total // 2 if writing_follows else total
        self.last = -1
        self.to_write = self.written = 0

    def checked(self, rows: int) -> None:
        self._report(rows * self.checking_end // self.total if self.total else 0)

    def start_writing(self, rows: int) -> None:
        self.to_write = rows

    def wrote(self, rows: int) -> None:
        self.written += rows
        share = self.total - self.checking_end
        self._report(self.checking_end + (self.written * share // self.to_write if self.to_write else share))

    def finish(self) -> None:
        self._report(self.total)

    def _report(self, done: int) -> None:
        if self.callback is not None and done != self.last:
            self.last = done
            self.callback(done, self.total)


def people_import(
    *,
    actor: User | None,
    organization: Organization,
    csv_text: str,
    dry_run: bool,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import a people CSV into ``organization``'s directory (matched by employee id).

    The whole file is checked first. With any error nothing is written and every bad
    row is reported; otherwise, unless ``dry_run``, new people are created and changed
    ones updated in one transaction, together with their security events. People not
    in the file are left alone. ``progress(done, total)`` is called about every
    PROGRESS_EVERY rows, with ``total`` the number of data rows.
    """
    result = ImportResult(dry_run=dry_run)
    header, records, errors = read_records(csv_text)
    result.rows = len(records)
    tracker = _Progress(progress, result.rows, writing_follows=not dry_run)
    tracker.checked(0)
    if dry_run:
        _check_and_plan(header, records, organization, errors, result, tracker)
    else:
        # One import per organisation at a time, checked against the directory as it is
        # inside the transaction that writes: no lost update, no constraint race.
        with transaction.atomic():
            Organization.objects.select_for_update().filter(pk=organization.pk).first()
            planned = _check_and_plan(header, records, organization, errors, result, tracker)
            if planned is not None:
                _apply(actor, organization, *planned, result, tracker)
        if result.errors:
            _record_rejection(actor, organization, result)
    tracker.finish()
    return result


def _check_and_plan(
    header: list[str] | None,
    records: list[tuple[int, list[str]]],
    organization: Organization,
    errors: list[RowError],
    result: ImportResult,
    tracker: _Progress,
) -> tuple[Plan, Directory] | None:
    directory = Directory.load(organization)
    rows, errors = _check(header, records, directory, errors, tracker)
    if errors:
        result.errors = sorted(errors, key=_error_order)
        return None
    plan = plan_import(rows, directory)
    _count(result, plan)
    return plan, directory


def _check(
    header: list[str] | None,
    records: list[tuple[int, list[str]]],
    directory: Directory,
    errors: list[RowError],
    tracker: _Progress,
) -> tuple[list[PersonRow], list[RowError]]:
    positions, header_errors = check_header(header)
    errors = header_errors + errors
    if positions is None:
        return [], errors
    rows = []
    for done, (number, record) in enumerate(records, start=1):
        row, row_errors = parse_row(number, record, positions, len(header or ()))
        rows.append(row)
        errors += row_errors
        if done % PROGRESS_EVERY == 0:
            tracker.checked(done)
    errors += check_rows(rows, directory)
    tracker.checked(len(records))
    return rows, errors


_FIELD_ORDER = {name: position for position, name in enumerate(("header", "row", *COLUMNS))}


def _error_order(error: RowError) -> tuple[int, int]:
    return error.row, _FIELD_ORDER.get(error.field, -1)


def _count(result: ImportResult, plan: Plan) -> None:
    result.created = len(plan.creates)
    result.updated = len(plan.changes)
    result.unchanged = plan.unchanged
    result.contact_changed = len(plan.contact_changes)
    result.not_in_file = plan.not_in_file


def _apply(
    actor: User | None,
    organization: Organization,
    plan: Plan,
    directory: Directory,
    result: ImportResult,
    tracker: _Progress,
) -> None:
    tracker.start_writing(len(plan.creates) + len(plan.changes))
    with transaction.atomic():
        now = timezone.now()
        write_plan(actor=actor, organization=organization, plan=plan, directory=directory, now=now, step=tracker.wrote)
        security_event_record(
            event_type=EventType.DIRECTORY_IMPORT_COMPLETED,
            actor=actor,
            organization=organization,
            target=organization,
            details={**result.counts(), "dry_run": False},
        )
    result.applied = True


@transaction.atomic
def _record_rejection(actor: User | None, organization: Organization, result: ImportResult) -> None:
    security_event_record(
        event_type=EventType.DIRECTORY_IMPORT_REJECTED,
        actor=actor,
        organization=organization,
        target=organization,
        details={
            "rows": result.rows,
            "error_count": len(result.errors),
            "rows_with_errors": len({e.row for e in result.errors}),
        },
    )
