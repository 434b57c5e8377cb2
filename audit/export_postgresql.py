"""The export's PostgreSQL side: the database formats every row, Python forwards text.

CSV is ``COPY (<the filtered queryset's SELECT>) TO STDOUT WITH (FORMAT csv)``, read row by
row as PostgreSQL sends it; JSON lines are the same SELECT, each row one finished line, read
as a plain query's result in chunks of rows (psycopg's ``stream``): COPY's CSV output would
scan every line again for characters to quote, and JSON has none (10-13% faster end to end,
docs/benchmarks.md). Both are the fastest ways out of PostgreSQL found, and constant memory
(a server-side cursor through ``iterator()`` and Python formatting are 2-3 times slower).
A JSON line is one ``concat()`` per row; ``json_build_object`` and ``row_to_json`` cost
PostgreSQL about twice as much.
The SQL per column is written out here (it only names the event's own columns, no input),
so it is part of the statement rather than a bound parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager

import psycopg
from django.conf import settings
from django.db import connections
from django.db.models import Func, QuerySet, TextField

from audit import export
from audit.models import SecurityEvent

# 2026-03-02T09:01:00.123456+00:00, as to_json() writes it, from the plain text output: in the
# ISO DateStyle (set for the export) and the UTC session Django keeps, that text is
# "2026-03-02 09:01:00.123456+00" (the fraction trimmed the same way), and it costs
# PostgreSQL a third less than to_json (docs/benchmarks.md).
_ISO_TIME = "(replace({column}::text, ' ', 'T') || ':00')"
# The first character's code point against those of =, +, -, @, tab and CR: ascii() builds no
# substring, and the cell costs PostgreSQL about half what LEFT(...) IN (...) did.
_FORMULA_GUARD = "CASE WHEN ascii({column}) IN (61, 43, 45, 64, 9, 13) THEN '''' || {column} ELSE {column} END"
# Planner settings for the COPY, restored afterwards (also when a download is abandoned).
# No plain index scan: an export reads every matching row, and reading the heap forwards (a
# sequential or bitmap scan) in parallel workers that each sort their share is cheaper than
# walking the time index backwards, whether each event's link is then looked up by its index
# or hash-joined; the parallel walk of the index also stalls the workers on each other.
# No JIT: compiling these expressions costs each process (leader and workers) about half a
# second, more than it saves over 1,000,000 rows (docs/benchmarks.md).
_PLANNER = (("enable_indexscan", "off"), ("jit", "off"))


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


# Columns a JSON line quotes as they are: codes and ids the portal writes itself (nothing to
# escape), never null; and the link's, null together when the event has no link yet.
_JSON_PLAIN = ("event_type", "actor_kind", "target_type", "request_id")
_JSON_LINK = ("previous_hash", "hash", "key_id")


def _json_value(column: str) -> list[str]:
    """The column's JSON value as concat() arguments: SQL, and literals in single quotes.
    Free text goes through to_json (escaping)."""
    if column in export.TIME_COLUMNS:  # created_at never null, sealed_at in the link's part
        return ["'\"'", f"replace({column}::text, ' ', 'T')", "':00\"'"]  # _ISO_TIME, quoted
    if column == "source_ip":
        return ["COALESCE('\"' || HOST(source_ip) || '\"', 'null')"]
    if column == "details":
        return ["details::text"]
    if column in ("id", "sequence"):  # never null (sequence: inside the link's part)
        return [column]
    if column in ("actor_id", "organization_id"):
        return [f"COALESCE({column}::text, 'null')"]
    if column in _JSON_PLAIN or column in _JSON_LINK:
        return ["'\"'", column, "'\"'"]
    return [f"to_json({column})::text"]


def _concat(pieces: list[str]) -> str:
    """concat() of the pieces, neighbouring literals merged into one."""
    merged: list[str] = []
    for piece in pieces:
        if merged and piece.startswith("'") and merged[-1].startswith("'") and piece.count("'") == 2:
            merged[-1] = merged[-1][:-1] + piece[1:]
        else:
            merged.append(piece)
    return f"concat({', '.join(merged)})"


def _json_line_sql() -> str:
    """One concat() of the whole line: one allocation, unlike a chain of ``||``. The link's
    columns are one CASE: an unsealed event has no link, so they are null together."""
    pieces: list[str] = []
    link: list[str] = []
    for n, column in enumerate(export.export_columns()):
        key = f"'{'{' if n == 0 else ','}\"{column}\":'"
        if column in export.CHAIN_COLUMNS:
            link += [key, *_json_value(column)]
            if column == export.CHAIN_COLUMNS[-1]:
                nulls = ",".join(f'"{name}":null' for name in export.CHAIN_COLUMNS)
                pieces.append(f"CASE WHEN sequence IS NULL THEN ',{nulls}' ELSE {_concat(link)} END")
            continue
        pieces += [key, *_json_value(column)]
    return _concat([*pieces, "'}'"])


def csv_pieces(events: QuerySet[SecurityEvent]) -> Iterator[bytes]:
    """The events as CSV rows (no header), ``export.ROWS_PER_CHUNK`` rows per piece."""
    columns = export.export_columns()
    cells = {f"export_{n}": _SQL(_csv_cell(column)) for n, column in enumerate(columns)}
    return _copied(export.with_chain_link(events).annotate(**cells).values_list(*cells))


def json_line_pieces(events: QuerySet[SecurityEvent]) -> Iterator[bytes]:
    """The events as JSON lines, ``export.ROWS_PER_CHUNK`` lines per piece: the lines as
    the result of a plain query, streamed (``_streamed``), not through COPY, whose CSV
    output scans each 800-byte line again for characters to quote (none are, in JSON)."""
    lines = export.with_chain_link(events).annotate(export_line=_SQL(_json_line_sql())).values_list("export_line")
    return _streamed(lines)


@contextmanager
def _export_settings(connection) -> Iterator[None]:
    """The export's planner settings on the connection (Django's persistent one), reset
    afterwards, also when a download is abandoned."""
    work_mem = settings.AUDIT_EXPORT_WORK_MEM
    with connection.cursor() as cursor:
        # DateStyle: the server's default, which _ISO_TIME depends on.
        cursor.execute("SET DateStyle TO ISO")
        for name, value in _PLANNER:
            cursor.execute(f"SET {name} TO {value}")
        if work_mem:
            cursor.execute("SELECT set_config('work_mem', %s, false)", [work_mem])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for name in [name for name, _ in _PLANNER] + (["work_mem"] if work_mem else []):
                cursor.execute(f"RESET {name}")


def _copied(rows: QuerySet) -> Iterator[bytes]:
    """``COPY (<the queryset's SELECT>) TO STDOUT WITH (FORMAT csv)``, read as PostgreSQL sends it."""
    sql, params = rows.query.sql_with_params()
    connection = connections[rows.db]
    with (
        _export_settings(connection),
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy,
    ):
        yield from _pieces(copy)


def _streamed(rows: QuerySet) -> Iterator[bytes]:
    """The queryset's one text column, a line each, read ``export.ROWS_PER_CHUNK`` rows at a
    time as PostgreSQL sends them (libpq's chunked rows mode, libpq 17 and later; one row at
    a time before): a plain query, so PostgreSQL still runs it in parallel (a server-side
    cursor would not), in constant memory. Abandoned halfway, psycopg cancels the query and
    drains what is left before the connection is used again."""
    sql, params = rows.query.sql_with_params()
    connection = connections[rows.db]
    size = export.ROWS_PER_CHUNK if psycopg.pq.version() >= 170000 else 1
    with (
        _export_settings(connection),
        connection.cursor() as cursor,
        closing(cursor.cursor.stream(sql, params, size=size)) as rows_read,  # closed first
    ):
        for batch in export.batches(line for (line,) in rows_read):
            batch.append("")  # a newline after the last line too
            yield "\n".join(batch).encode()


def _pieces(copy: psycopg.Copy) -> Iterator[bytes]:
    """The COPY's rows (one protocol message each, its newline included) joined
    ``export.ROWS_PER_CHUNK`` at a time."""
    for batch in export.batches(bytes(row) for row in copy):
        yield b"".join(batch)
