"""SQL expressions the audit reads filter on, written so PostgreSQL can match them to
the expression indexes in ``audit/migrations``: the constant parts are literal SQL, not
bound parameters (an expression index is used only for an identical expression, and a
parameter is not identical to the constant the index was built with)."""

from __future__ import annotations

from django.db.models import Func, TextField


class SearchText(Func):
    """The lower-cased text that free-text search matches: actor, target and request id.
    The index: ``audit_event_search_trgm`` (pg_trgm, PostgreSQL only)."""

    template = "LOWER(%(expressions)s)"
    arg_joiner = " || ' ' || "
    output_field = TextField()

    def __init__(self):
        super().__init__("actor_label", "target_label", "request_id")


class DetailsKey(Func):
    """``details ->> '<key>'`` as text, the key written into the SQL."""

    output_field = TextField()

    def __init__(self, key: str):
        if not key.isidentifier():
            raise ValueError(f"Not a plain details key: {key!r}")
        self.key = key
        super().__init__("details")

    def as_sql(self, compiler, connection, **extra_context):
        template = f"CAST(JSON_EXTRACT(%(expressions)s, '$.{self.key}') AS TEXT)"
        return super().as_sql(compiler, connection, template=template, **extra_context)

    def as_postgresql(self, compiler, connection, **extra_context):
        template = f"(%(expressions)s ->> '{self.key}')"
        return super().as_sql(compiler, connection, template=template, **extra_context)


class Subject(Func):
    """Whom an event is about, as ``"<type>:<id>"``: the person in ``details["person"]``
    (verification events target the request but name the person) as ``accounts.person:<id>``,
    else the target (``accounts.person:7``, ``accounts.user:3``). One value per event, so
    a person's or a staff member's events come from one index in time order. The index:
    ``audit_event_subject`` (PostgreSQL only)."""

    output_field = TextField()
    _PERSON = "CAST(JSON_EXTRACT(details, '$.person') AS TEXT)"

    def __init__(self):
        super().__init__()

    def as_sql(self, compiler, connection, **extra_context):
        template = (
            f"(CASE WHEN {self._PERSON} IS NOT NULL THEN 'accounts.person:' || {self._PERSON} "
            "ELSE target_type || ':' || target_id END)"
        )
        return template, []

    def as_postgresql(self, compiler, connection, **extra_context):
        return SUBJECT_SQL, []


# The exact expression of the PostgreSQL index audit_event_subject (audit/migrations).
SUBJECT_SQL = (
    "(CASE WHEN (details ->> 'person') IS NOT NULL THEN 'accounts.person:' || (details ->> 'person') "
    "ELSE target_type || ':' || target_id END)"
)
