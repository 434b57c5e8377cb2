"""Model instances from written-out SQL, for the few reads on the verification round trip.

Django builds and compiles every query anew; for a read that joins six tables that costs
more CPU than everything else in the request (docs/benchmarks.md). Such a read is written
out once, with each table's columns listed by ``ModelColumns`` from the model's own fields
(so a new field is read without touching the SQL), and each row becomes instances exactly
as the ORM makes them: the fields' database converters applied (SQLite's text times, JSON),
then ``Model.from_db``. Every value stays a bound parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Model

M = TypeVar("M", bound=Model)


@contextmanager
def statement_cursor(using: str = DEFAULT_DB_ALIAS) -> Iterator[CursorWrapper]:
    """A cursor for one written-out statement, kept for the next while its connection lives.

    ``connection.cursor()`` makes a new driver cursor every time: with psycopg about 40 µs
    of CPU, a third of a short statement's on the round trip (docs/benchmarks.md). Its other
    work still happens whenever it matters: the first statement after a request starts gets
    a cursor from ``connection.cursor()`` (so the connection's health check runs), and so
    does every statement while queries are being logged (a debug cursor: the tests' query
    counts) or while the connection is shared between threads. Statements still run through
    Django's cursor wrapper: its error translation, broken-transaction check and execute
    wrappers apply to each one. Read a statement's rows inside its ``with`` block, before any
    other statement runs: the next one on the connection reuses the cursor."""
    connection = connections[using]
    kept = connection.__dict__.get("_statement_cursor")
    if (
        kept is not None
        and connection.connection is not None
        and kept.cursor.connection is connection.connection
        # Both set by Django at connect (django-stubs does not list them).
        and (connection.health_check_done or not connection.health_check_enabled)  # type: ignore[attr-defined]
        and not connection.queries_logged
        and not connection.allow_thread_sharing
    ):
        yield kept
        return
    connection.__dict__.pop("_statement_cursor", None)
    cursor = connection.cursor()
    if connection.queries_logged or connection.allow_thread_sharing:
        with cursor:
            yield cursor
        return
    connection.__dict__["_statement_cursor"] = cursor
    yield cursor


class ModelColumns(Generic[M]):
    """The concrete columns of ``model`` under a table alias in a written-out SELECT."""

    def __init__(self, model: type[M], alias: str):
        self.model = model
        self.alias = alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)
        self._pk_index = self.attnames.index(model._meta.pk.attname)
        self._converters: dict[str, list[tuple[int, Any, list[Callable]]]] = {}

    @property
    def table(self) -> str:
        return f"{self.model._meta.db_table} {self.alias}"

    def select(self) -> str:
        return ", ".join(f'{self.alias}."{f.column}"' for f in self.fields)

    def _converters_for(self, using: str) -> list[tuple[int, Any, list[Callable]]]:
        connection = connections[using]
        vendor = connection.vendor
        if vendor not in self._converters:
            found = []
            for n, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
                if converters:
                    found.append((n, column, converters))
            self._converters[vendor] = found
        return self._converters[vendor]

    def instance(self, row: Sequence[Any], start: int, using: str) -> M | None:
        """The instance in ``row[start:start + width]``; None when its key is NULL (a LEFT
        JOIN that found nothing)."""
        values = list(row[start : start + self.width])
        if values[self._pk_index] is None:
            return None
        connection = connections[using]
        for n, column, converters in self._converters_for(using):
            value = values[n]
            for converter in converters:
                value = converter(value, column, connection)
            values[n] = value
        return self.model.from_db(using, self.attnames, values)


def possible_key(pk: int) -> bool:
    """Whether ``pk`` can be a row's key at all (a positive bigint). The ORM finds nothing for
    any other number; a written-out statement would have the database refuse it (a 500)."""
    return 0 < pk <= 2**63 - 1


def placeholders(count: int) -> str:
    """``%s, %s, ...`` for an IN list of ``count`` values (at least one: ``IN ()`` is not SQL)."""
    return ", ".join(["%s"] * max(count, 1))


class JoinedRead(Generic[M]):
    """One written-out SELECT of a model row with related rows joined, made into instances
    tied together as ``select_related`` ties them: forward foreign keys and one-to-ones, and
    reverse one-to-ones (a missing row is remembered as missing, so reading it later costs
    no query). The joins are built from the models' fields; the caller writes the WHERE.

    ``JoinedRead(VerificationRequest, "r", ("r", "person", "p"), ("p", "authenticator", "a"))``
    """

    def __init__(self, model: type[M], alias: str, *joins: tuple[str, str, str]):
        self.parts: list[tuple[ModelColumns, str | None, Any]] = [(ModelColumns(model, alias), None, None)]
        models: dict[str, type[Model]] = {alias: model}
        optional: set[str] = set()  # aliases that may be missing: every join below one is LEFT too
        clauses = []
        for parent_alias, name, alias_ in joins:
            field: Any = models[parent_alias]._meta.get_field(name)  # a relation: Django's types do not say so
            related: type[Model] = field.related_model
            columns = ModelColumns(related, alias_)
            if field.concrete:  # a foreign key or one-to-one on the parent
                may_miss = field.null or parent_alias in optional
                on = f'{alias_}."{field.target_field.column}" = {parent_alias}."{field.column}"'
            else:  # the reverse side of a one-to-one
                may_miss = True
                forward = field.remote_field
                on = f'{alias_}."{forward.column}" = {parent_alias}."{forward.target_field.column}"'
            if may_miss:
                optional.add(alias_)
            clauses.append(f"{'LEFT JOIN' if may_miss else 'JOIN'} {columns.table} ON {on}")
            self.parts.append((columns, parent_alias, field))
            models[alias_] = related
        self.from_sql = " ".join([self.parts[0][0].table, *clauses])
        self.select_sql = ", ".join(columns.select() for columns, _, _ in self.parts)
        self.width = sum(columns.width for columns, _, _ in self.parts)

    def sql(self, where: str, *, lock: bool = False, using: str = DEFAULT_DB_ALIAS) -> str:
        """``SELECT ... WHERE <where>``; with ``lock``, the first table's row is locked
        (``FOR UPDATE OF``) where the database can lock rows."""
        statement = f"SELECT {self.select_sql} FROM {self.from_sql} WHERE {where}"  # noqa: S608 - names from models
        return statement + lock_clause(self.parts[0][0].alias, using=using) if lock else statement

    def instance(self, row: Sequence[Any], using: str = DEFAULT_DB_ALIAS) -> M:
        found: dict[str, Any] = {}
        at = 0
        for columns, parent_alias, field in self.parts:
            value = columns.instance(row, at, using)
            at += columns.width
            found[columns.alias] = value
            parent = found.get(parent_alias) if parent_alias else None
            if parent is None:
                continue
            field.set_cached_value(parent, value)
            if value is not None and field.one_to_one:
                field.remote_field.set_cached_value(value, parent)
        return found[self.parts[0][0].alias]

    def fetch(self, where: str, params: Sequence[Any], *, lock: bool = False, using: str = DEFAULT_DB_ALIAS):
        """The instance of the first matching row, or None."""
        with statement_cursor(using) as cursor:
            cursor.execute(self.sql(where, lock=lock, using=using), params)
            row = cursor.fetchone()
        return None if row is None else self.instance(row, using)

    def fetch_with_children(
        self,
        children: ModelColumns,
        on: str,
        where: str,
        params: Sequence[Any],
        *,
        order: str,
        using: str = DEFAULT_DB_ALIAS,
    ) -> tuple[M | None, list]:
        """The first matching row's instance, as ``fetch`` makes it, and its children's: the
        rows of ``children`` LEFT JOINed ``on``, in ``order``, in the same statement (one row
        per child, the parent's columns repeated; a parent without children is one row of
        NULLs on their side). None and [] when nothing matches."""
        statement = (
            f"SELECT {self.select_sql}, {children.select()} FROM {self.from_sql} "  # noqa: S608 - names from models
            f"LEFT JOIN {children.table} ON {on} WHERE {where} ORDER BY {order}"
        )
        with statement_cursor(using) as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        if not rows:
            return None, []
        found = (children.instance(row, self.width, using) for row in rows)
        return self.instance(rows[0], using), [child for child in found if child is not None]

    def fetch_all(
        self, where: str, params: Sequence[Any], *, lock: bool = False, using: str = DEFAULT_DB_ALIAS
    ) -> list[M]:
        """The instances of every matching row (order them in ``where``), as ``fetch`` makes them."""
        with statement_cursor(using) as cursor:
            cursor.execute(self.sql(where, lock=lock, using=using), params)
            return [self.instance(row, using) for row in cursor.fetchall()]


def prefetched(instance: Model, name: str, rows: list) -> None:
    """``instance.<name>.all()`` answers ``rows`` without a query, as after ``prefetch_related``;
    a further ``filter()`` still queries only the instance's own rows (the manager's queryset,
    lazy: building it runs nothing)."""
    related = getattr(instance, name).get_queryset()
    related._result_cache = rows
    related._prefetch_done = True
    instance.__dict__.setdefault("_prefetched_objects_cache", {})[name] = related


def execute(sql: str, params: Sequence[Any], *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Run one written-out statement; the number of rows it changed."""
    with statement_cursor(using) as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def row_values(sql: str, params: Sequence[Any], *, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
    """Every row a written-out SELECT returns, as tuples (no conversion)."""
    with statement_cursor(using) as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def column_values(sql: str, params: Sequence[Any], *, using: str = DEFAULT_DB_ALIAS) -> list[Any]:
    """The first column of every row a written-out SELECT returns (ids, names: no conversion)."""
    return [row[0] for row in row_values(sql, params, using=using)]


def db_time(value: datetime, *, using: str = DEFAULT_DB_ALIAS) -> Any:
    """A time as the database takes it in a written-out statement (SQLite keeps text)."""
    return connections[using].ops.adapt_datetimefield_value(value)


def lock_clause(alias: str, *, using: str = DEFAULT_DB_ALIAS) -> str:
    """`` FOR UPDATE OF <alias>`` where the database locks rows (PostgreSQL), else nothing."""
    features = connections[using].features
    if not features.has_select_for_update:
        return ""
    return f" FOR UPDATE OF {alias}" if features.has_select_for_update_of else " FOR UPDATE"


def insert(instance: Model, *, also: tuple[str, Sequence[Any]] | None = None, using: str = DEFAULT_DB_ALIAS) -> None:
    """``instance.save()`` for a new row of a model without save signals or custom save
    logic, as one written-out INSERT ... RETURNING its key: each field's ``pre_save`` (so
    ``auto_now`` times are set) and its preparation for the database, as a save does.

    ``also``: one more written-out statement (an UPDATE: sql, values) to run with it, in the
    same statement where the database has data-modifying WITH (PostgreSQL), else just
    before. The two run in no set order there: the caller must already hold the row locks
    either takes."""
    connection = connections[using]
    prefix, prefix_values = "", []
    if also is not None and connection.vendor == "postgresql":
        prefix, prefix_values = f"WITH also AS ({also[0]}) ", list(also[1])
    elif also is not None:
        execute(*also, using=using)
    if not connection.features.can_return_columns_from_insert:
        instance.save(using=using)
        return
    model = type(instance)
    with statement_cursor(using) as cursor:
        cursor.execute(
            f'{prefix}{insert_into(model)} RETURNING "{model._meta.pk.column}"',
            [*prefix_values, *insert_values(instance, using=using)],
        )
        instance.pk = cursor.fetchone()[0]
    instance._state.adding = False
    instance._state.db = using


def insert_values(instance: Model, *, using: str = DEFAULT_DB_ALIAS) -> list[Any]:
    """The values of ``insert_into(type(instance))`` for a new row: each field's ``pre_save``
    and its preparation for the database, as a save does."""
    connection = connections[using]
    fields = _insert_fields(type(instance))
    return [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]


def _insert_fields(model: type[Model]) -> list:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


@cache
def insert_into(model: type[Model]) -> str:
    """``INSERT INTO <table> (<every column but the key>) VALUES (%s, ...)``, for ``insert_values``."""
    fields = _insert_fields(model)
    columns = ", ".join(f'"{field.column}"' for field in fields)
    return f"INSERT INTO {model._meta.db_table} ({columns}) VALUES ({placeholders(len(fields))})"  # noqa: S608
