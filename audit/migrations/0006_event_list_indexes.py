"""Indexes for the auditor's event list on PostgreSQL (audit.selectors).

- ``audit_event_actor``: one staff member's events in time order (actor filter, staff timeline).
- ``audit_event_subject``: one person's (or staff account's) events in time order; the
  expression is ``audit.expressions.SUBJECT_SQL`` exactly, or PostgreSQL will not use it.
- ``audit_event_search_trgm``: free-text search, a trigram index over
  ``audit.expressions.SearchText`` (pg_trgm, created by accounts/migrations/0003).

Plain SQL and PostgreSQL only, like the person search's trigram index: the expressions must
be written out literally, and SQLite (the embedded development database) scans instead.
Built CONCURRENTLY, so adding them to a log that already holds millions of events does not
stop it being written; a migration with CONCURRENTLY cannot be atomic.
tests/audit/test_views.py checks on PostgreSQL that the list's queries use each of them.
"""

from django.db import migrations

SUBJECT = (
    "(CASE WHEN (details ->> 'person') IS NOT NULL THEN 'accounts.person:' || (details ->> 'person') "
    "ELSE target_type || ':' || target_id END)"
)
SEARCH_TEXT = "LOWER(actor_label || ' ' || target_label || ' ' || request_id)"

INDEXES = {
    "audit_event_actor": "(actor_id, created_at, id) WHERE actor_id IS NOT NULL",
    "audit_event_subject": f"({SUBJECT}, created_at, id)",
    "audit_event_search_trgm": f"USING gin (({SEARCH_TEXT}) gin_trgm_ops)",
}


class PostgreSQLOnly(migrations.RunSQL):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("audit", "0005_append_only_triggers"), ("accounts", "0003_person_search_trigram")]
    operations = [
        PostgreSQLOnly(
            sql=[
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                *(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON audit_securityevent {definition}"
                    for name, definition in INDEXES.items()
                ),
                # A finer histogram of the search text, so a rare needle is estimated rare and
                # searched through the trigram index instead of by walking the time index.
                "ALTER INDEX audit_event_search_trgm ALTER COLUMN 1 SET STATISTICS 1000",
            ],
            reverse_sql=[f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name in INDEXES],
        )
    ]
