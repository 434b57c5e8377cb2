"""On PostgreSQL, a trigram index makes the person search's substring match fast.

pg_trgm is a trusted extension (PostgreSQL 13+), so a database owner without
superuser rights can create it. Other databases skip this migration's SQL.
"""

from django.db import migrations


class PostgreSQLOnly(migrations.RunSQL):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_staff_roles")]
    operations = [
        PostgreSQLOnly(
            sql=[
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                "CREATE INDEX IF NOT EXISTS person_search_trgm ON accounts_person USING gin (search_text gin_trgm_ops)",
            ],
            reverse_sql=["DROP INDEX IF EXISTS person_search_trgm"],
        )
    ]
