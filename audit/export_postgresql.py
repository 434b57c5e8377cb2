"""The export's PostgreSQL side: the database formats every row, Python forwards text.

Both are ``COPY (<the filtered queryset's SELECT>) TO STDOUT``, read row by row as
PostgreSQL sends it: the fastest way out of PostgreSQL, and constant memory (measured in
docs/benchmarks.md: a server-side cursor through ``iterator()`` and Python formatting are
2-3 times slower). A JSON line is one ``concat()`` per row; ``json_build_object`` and
``row_to_json`` cost PostgreSQL about twice as much.
The SQL per column is written out here (it only names the event's own columns, no input),
so it is part of the statement rather than a bound parameter.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connections
from django.db.models import Func, QuerySet, TextField

from audit import export
from audit.models import SecurityEvent

# 2026-03-02T09:01:00.123456+00:00, as to_json() writes it, from the plain text output: in the
# ISO DateStyle (set for the export) and the UTC session Django keeps, that text is
# "2026-03-02 09:01:00.123456+00" (the fraction trimmed the same way), and it costs
# PostgreSQL a third less than to_json (docs/benchmarks.md).
_ISO_TIME = "(replace({column}::text, ' ', 'T') || ':00')"
_FORMULA_GUARD = (
    "CASE WHEN LEFT({column}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) THEN '''' || {column} ELSE {column} END"
)


class _SQL(Func):
    """A fixed SQL expression over the event's own columns."""

    output_field = TextField()

    def __init__(self, sql: str):
        self.sql = sql
        super().__init__()

    def as_sql(self, compiler, connection, **extra_context):
        return self.sql, []


def _csv_cell(column: str) -> str:
    if column in export.TIME_COLUMNS:
        return _ISO_TIME.format(column=column)
    if column == "source_ip":
        return "HOST(source_ip)"
    if column == "details":
        return "details::text"
    if column in export.CSV_TEXT_COLUMNS:
        return _FORMULA_GUARD.format(column=column)
    return column


def _json_value(column: str) -> str:
    """SQL for the column's JSON value. Free text goes through to_json (escaping); ids,
    codes and hashes the portal writes itself are quoted as they are (nothing to escape)."""
    if column in export.TIME_COLUMNS:
        return f"COALESCE('\"' || {_ISO_TIME.format(column=column)} || '\"', 'null')"
    if column == "source_ip":
        return "COALESCE('\"' || HOST(source_ip) || '\"', 'null')"
    if column == "details":
        return "details::text"
    if column in ("id", "actor_id", "organization_id", "sequence"):
        return f"COALESCE({column}::text, 'null')"
    if column in ("event_type", "actor_kind", "target_type", "request_id"):
        return f"'\"' || {column} || '\"'"
    if column in ("previous_hash", "hash", "key_id"):  # from the link: null until sealed
        return f"COALESCE('\"' || {column} || '\"', 'null')"
    return f"to_json({column})::text"


def _json_line_sql() -> str:
    """One concat() of the whole line: one allocation, unlike a chain of ``||``."""
    parts = []
    for n, column in enumerate(export.export_columns()):
        parts.append(f"'{'{' if n == 0 else ','}\"{column}\":'")
        parts.append(_json_value(column))
    return f"concat({', '.join(parts)}, '}}')"


def csv_pieces(events: QuerySet[SecurityEvent]) -> Iterator[bytes]:
    """The events as CSV rows (no header), ``export.ROWS_PER_CHUNK`` rows per piece."""
    columns = export.export_columns()
    cells = {f"export_{n}": _SQL(_csv_cell(column)) for n, column in enumerate(columns)}
    return _copied(export.with_chain_link(events).annotate(**cells).values_list(*cells), "FORMAT csv")


def json_line_pieces(events: QuerySet[SecurityEvent]) -> Iterator[bytes]:
    """The events as JSON lines, ``export.ROWS_PER_CHUNK`` lines per piece. COPY's CSV
    format with a quote and a delimiter that JSON text never holds raw (control characters
    are escaped in JSON) sends each line exactly as built: no quoting, no escaping."""
    lines = export.with_chain_link(events).annotate(export_line=_SQL(_json_line_sql())).values_list("export_line")
    return _copied(lines, "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'")


def _copied(rows: QuerySet, options: str) -> Iterator[bytes]:
    """``COPY (<the queryset's SELECT>) TO STDOUT``, read as PostgreSQL sends it."""
    sql, params = rows.query.sql_with_params()
    connection = connections[rows.db]
    with connection.cursor() as cursor:
        # DateStyle: the server's default, which _ISO_TIME depends on. No plain index scan: an
        # export reads every matching row, and reading the heap forwards (a sequential or
        # bitmap scan) and sorting is faster than walking the id index backwards (207,000
        # against 153,000 rows/s for all of 1,000,000 events; docs/benchmarks.md).
        cursor.execute("SET DateStyle TO ISO")
        cursor.execute("SET enable_indexscan TO off")
    try:
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH ({options})", params) as copy,
        ):
            batch: list[bytes] = []
            for row in copy:  # one row per message
                batch.append(bytes(row))
                if len(batch) == export.ROWS_PER_CHUNK:
                    yield b"".join(batch)
                    batch = []
            if batch:
                yield b"".join(batch)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_indexscan")
