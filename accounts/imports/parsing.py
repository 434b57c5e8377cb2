"""Reading a people CSV: decoding, the header, and each row's own fields.

Checks that need other rows or the directory (duplicates, managers, cycles) are in
``checks``; this module only looks at one row at a time.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from accounts.imports.results import ImportFileError, RowError

COLUMNS = ("employee_id", "full_name", "email", "phone", "department", "manager_employee_id", "privileged")
HEADER_ROW = 1
_EMPLOYEE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0", ""}
_MAX_LENGTH = {"full_name": 200, "email": 254, "department": 120}
_email_validator = EmailValidator()


@dataclass(slots=True)
class PersonRow:
    """One data row, normalised. A field that failed its check is left empty (false) and the
    row has an error, so the file is rejected; the cross-row checks skip empty values."""

    row: int
    employee_id: str
    full_name: str
    email: str
    phone: str
    department: str
    manager_employee_id: str
    privileged: bool


def decode_upload(data: bytes) -> str:
    """The file as text: UTF-8 (a byte-order mark is allowed), at most DIRECTORY_IMPORT_MAX_BYTES."""
    check_upload_size(len(data))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"The file is not UTF-8 text (byte {exc.start + 1} cannot be read). "
            "Save it as “CSV UTF-8” and upload it again."
        ) from None


def check_upload_size(size: int) -> None:
    """Raise ImportFileError when ``size`` bytes is over DIRECTORY_IMPORT_MAX_BYTES."""
    limit = settings.DIRECTORY_IMPORT_MAX_BYTES
    if size > limit:
        raise ImportFileError(f"The file is {_mb(size)}; the limit is {_mb(limit)}.")


def _mb(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size:,} bytes"
    return f"{size / (1024 * 1024):.1f} MB"


def read_records(csv_text: str) -> tuple[list[str] | None, list[tuple[int, list[str]]], list[RowError]]:
    """Header, numbered non-blank data records, and any error that stopped the CSV reader."""
    reader = csv.reader(io.StringIO(csv_text.removeprefix("\ufeff"), newline=""))
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    number = 0
    try:
        for number, record in enumerate(reader, start=1):
            if header is None:
                header = record
            elif any(cell.strip() for cell in record):
                records.append((number, record))
    except csv.Error as exc:
        return header, records, [RowError(number + 1, "row", f"cannot be read as CSV: {exc}")]
    return header, records, []


def check_header(header: list[str] | None) -> tuple[list[int] | None, list[RowError]]:
    """Where each of COLUMNS sits in a record, and errors for unknown, repeated or missing columns.

    Positions are None when the rows cannot be read (a column missing or repeated);
    an unknown extra column is an error but the rows are still checked.
    """
    if not header or not any(cell.strip() for cell in header):
        return None, [RowError(HEADER_ROW, "header", "row 1 is empty; it must name the columns")]
    names = [cell.strip().lower() for cell in header]
    errors = []
    for position, name in enumerate(names):
        if name not in COLUMNS:
            errors.append(RowError(HEADER_ROW, name or f"column {position + 1}", "unknown column"))
        elif names.index(name) != position:
            errors.append(RowError(HEADER_ROW, name, "column appears more than once"))
    missing = [name for name in COLUMNS if name not in names]
    errors += [RowError(HEADER_ROW, name, "missing column") for name in missing]
    if missing or len(set(names)) != len(names):
        return None, errors
    return [names.index(name) for name in COLUMNS], errors


def parse_row(number: int, record: list[str], positions: list[int], width: int) -> tuple[PersonRow, list[RowError]]:
    """The row's values, normalised and checked one field at a time."""
    if len(record) != width:
        row = PersonRow(number, "", "", "", "", "", "", False)
        return row, [RowError(number, "row", f"has {len(record)} values; the header has {width} columns")]
    raw = {name: record[position].strip() for name, position in zip(COLUMNS, positions, strict=True)}
    values: dict[str, object] = {}
    errors = []
    for name, check in _FIELD_CHECKS.items():
        try:
            values[name] = check(raw[name])
        except ValueError as exc:
            values[name] = False if name == "privileged" else ""
            errors.append(RowError(number, name, str(exc)))
    row = PersonRow(row=number, manager_employee_id=raw["manager_employee_id"], **values)  # type: ignore[arg-type]
    return row, errors


def _employee_id(value: str) -> str:
    if not value:
        raise ValueError("is missing")
    if not _EMPLOYEE_ID.fullmatch(value):
        raise ValueError("must be 1 to 64 letters, digits, dots, dashes or underscores")
    return value


def _full_name(value: str) -> str:
    if not value:
        raise ValueError("is missing")
    return _not_too_long("full_name", value)


def _email(value: str) -> str:
    if not value:
        return ""
    try:
        _email_validator(value)
    except ValidationError:
        raise ValueError("is not a valid email address") from None
    return _not_too_long("email", value.lower())


def _phone(value: str) -> str:
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, settings.DIRECTORY_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"is not a valid phone number (default region {settings.DIRECTORY_DEFAULT_REGION})")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _department(value: str) -> str:
    return _not_too_long("department", value)


def _privileged(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("must be true/false, yes/no, 1/0 or empty")


def _not_too_long(name: str, value: str) -> str:
    if len(value) > _MAX_LENGTH[name]:
        raise ValueError(f"is longer than {_MAX_LENGTH[name]} characters")
    return value


_FIELD_CHECKS: dict[str, Callable[[str], object]] = {
    "employee_id": _employee_id,
    "full_name": _full_name,
    "email": _email,
    "phone": _phone,
    "department": _department,
    "privileged": _privileged,
}
