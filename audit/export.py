"""Events as CSV and as JSON lines, streamed in constant memory.

Each export is the filtered queryset, read in order and never held whole. On PostgreSQL the
database formats the rows and streams them with ``COPY (<the queryset's SELECT>) TO
STDOUT``, so Python only forwards text (``audit.export_postgresql``). Elsewhere (SQLite,
the embedded development database) Python formats tuples from ``iterator(chunk_size=...)``.
Both give the same columns (``export_columns()``) with the same values: times as ISO 8601
in UTC, the address without a prefix length, ``details`` as the stored JSON. In CSV a text
cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) gets a leading
apostrophe. ``event_as_dict`` gives one event in the same shape (the SIEM forwarder's lines).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connections
from django.db.models import F, QuerySet, TextField
from django.db.models.functions import Cast

from audit.models import SecurityEvent

CHUNK_SIZE = 2000  # rows per database fetch
ROWS_PER_CHUNK = 500  # rows per piece of the HTTP response, and per read of streamed rows
BASE_COLUMNS = (
    "id",
    "created_at",
    "event_type",
    "actor_kind",
    "actor_id",
    "actor_label",
    "organization_id",
    "organization_label",
    "target_type",
    "target_id",
    "target_label",
    "request_id",
    "source_ip",
    "user_agent",
)
# The event's link in the hash chain (audit.models.ChainLink); empty until sealed. With
# them an exported event can be checked outside the database (docs/audit.md).
CHAIN_COLUMNS = ("sequence", "previous_hash", "hash", "key_id", "sealed_at")
TIME_COLUMNS = ("created_at", "sealed_at")
# Free text a spreadsheet would run as a formula when it starts with one of these.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_TEXT_COLUMNS = ("actor_label", "organization_label", "target_label", "request_id", "user_agent")


def export_columns() -> tuple[str, ...]:
    """Every exported column, ``details`` last."""
    return BASE_COLUMNS + CHAIN_COLUMNS + ("details",)


def with_chain_link(events: QuerySet[SecurityEvent]) -> QuerySet[SecurityEvent]:
    """The events joined to their links (LEFT OUTER: an unsealed event has none). The chain
    columns' names are the link's alone, so SQL can name them bare."""
    return events.alias(export_link=F("link__sequence"))


def csv_header() -> str:
    return ",".join(export_columns()) + "\n"


def csv_chunks(events: QuerySet[SecurityEvent]) -> Iterator[str | bytes]:
    """The header line, then the events in pieces of about ``ROWS_PER_CHUNK`` rows."""
    if connections[events.db].vendor == "postgresql":
        from audit.export_postgresql import csv_pieces

        yield csv_header()
        yield from csv_pieces(events)
        return
    yield from _python_csv(events)


def jsonl_chunks(events: QuerySet[SecurityEvent]) -> Iterator[str | bytes]:
    """One JSON object per line, ``ROWS_PER_CHUNK`` lines per piece."""
    if connections[events.db].vendor == "postgresql":
        from audit.export_postgresql import json_line_pieces

        yield from json_line_pieces(events)
        return
    for batch in batches(_python_json_lines(events)):
        batch.append("")
        yield "\n".join(batch)


# --- Formatted by Python (SQLite) ---------------------------------------------------------


def _rows(events: QuerySet[SecurityEvent]) -> Iterator[tuple]:
    columns = export_columns()
    paths = {"details": "export_details", **{c: f"link__{c}" for c in CHAIN_COLUMNS}}
    values = events.annotate(export_details=Cast("details", TextField())).values_list(
        *[paths.get(c, c) for c in columns]
    )
    return values.iterator(chunk_size=CHUNK_SIZE)


def _positions(columns: tuple[str, ...], names: tuple[str, ...]) -> list[int]:
    return [i for i, column in enumerate(columns) if column in names]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def csv_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def _python_csv(events: QuerySet[SecurityEvent]) -> Iterator[str]:
    columns = export_columns()
    times = _positions(columns, TIME_COLUMNS)
    texts = _positions(columns, CSV_TEXT_COLUMNS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    buffer.write(csv_header())
    for batch in batches(_rows(events)):
        for row in batch:
            cells = ["" if v is None else v for v in row]
            for i in times:
                cells[i] = _iso(row[i]) or ""
            for i in texts:
                cells[i] = csv_safe(cells[i])
            writer.writerow(cells)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _python_json_lines(events: QuerySet[SecurityEvent]) -> Iterator[str]:
    columns = export_columns()
    head_columns = columns[:-1]
    times = _positions(columns, TIME_COLUMNS)
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for row in _rows(events):
        values = list(row[:-1])
        for i in times:
            values[i] = _iso(values[i])
        head = dumps(dict(zip(head_columns, values, strict=True)))
        yield f'{head[:-1]}, "details": {row[-1] or "{}"}}}'


def batches(rows: Iterable) -> Iterator[list]:
    """The rows in lists of ``ROWS_PER_CHUNK`` (the last one shorter): one piece of the response each."""
    batch: list = []
    for row in rows:
        batch.append(row)
        if len(batch) == ROWS_PER_CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def event_as_dict(event: SecurityEvent | Mapping[str, Any]) -> dict[str, Any]:
    """One event (a model or its columns by name) with the export's columns, in order, and
    values: times in ISO 8601, the address as text, ``details`` as an object."""
    if isinstance(event, Mapping):
        get = event.get
    else:
        link = getattr(event, "link", None)  # none while the event waits for the sealer
        get = partial(_model_value, event, link)
    data: dict[str, Any] = {}
    for column in export_columns():
        value = get(column, None)
        if isinstance(value, datetime):
            value = _iso(value)
        elif column == "source_ip" and value is not None:
            value = str(value)
        data[column] = value
    return data


def _model_value(event: SecurityEvent, link: Any, column: str, default: Any = None) -> Any:
    if column in CHAIN_COLUMNS:
        return getattr(link, column, default)
    return getattr(event, column, default)
