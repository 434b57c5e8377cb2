"""Directory import: people of one organisation from a CSV file (command, upload page, Celery task)."""

from accounts.imports.parsing import COLUMNS, check_upload_size, decode_upload
from accounts.imports.results import ImportFileError, ImportResult, RowError
from accounts.imports.service import people_import

__all__ = [
    "COLUMNS",
    "ImportFileError",
    "ImportResult",
    "RowError",
    "check_upload_size",
    "decode_upload",
    "people_import",
]
