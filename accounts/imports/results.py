"""What a directory import reports: counts, and one entry per problem found in the file."""

from __future__ import annotations

from dataclasses import dataclass, field


class ImportFileError(ValueError):
    """The upload cannot be read at all (too big, not UTF-8); nothing in it was looked at."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem: ``row`` counts records as a spreadsheet does (the header is row 1)."""

    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.field}: {self.message}"

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(slots=True)
class ImportResult:
    """Counts are what was written, or for a dry run what would have been.

    ``applied`` is true only when people were written. A file with any error is
    rejected as a whole: ``errors`` lists every problem and nothing is written.
    """

    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    contact_changed: int = 0
    not_in_file: int = 0
    errors: list[RowError] = field(default_factory=list)
    applied: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "contact_changed": self.contact_changed,
            "not_in_file": self.not_in_file,
        }

    def as_dict(self, *, max_errors: int | None = None) -> dict:
        """JSON-ready; ``error_count`` stays exact when the list is cut at ``max_errors``."""
        errors = self.errors if max_errors is None else self.errors[:max_errors]
        return {
            **self.counts(),
            "dry_run": self.dry_run,
            "applied": self.applied,
            "error_count": len(self.errors),
            "errors": [e.as_dict() for e in errors],
        }
