"""Model instances from written-out SQL, for the few reads on the verification round trip.

Django builds and compiles every query anew; for a read that joins six tables that costs
more CPU than everything else in the request (docs/benchmarks.md). Such a read is written
out once, with each table's columns listed by ``ModelColumns`` from the model's own fields
(so a new field is read without touching the SQL), and each row becomes instances exactly
as the ORM makes them: the fields' database converters applied (SQLite's text times, JSON),
then ``Model.from_db``. Every value stays a bound parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model

M = TypeVar("M", bound=Model)


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


def placeholders(count: int) -> str:
    """``%s, %s, ...`` for an IN list of ``count`` values (at least one: ``IN ()`` is not SQL)."""
    return ", ".join(["%s"] * max(count, 1))
