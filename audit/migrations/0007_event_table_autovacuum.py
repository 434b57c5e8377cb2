"""Vacuum the event table as its dead row versions pile up, not at 20% of the table.

Every event is updated exactly once (sealed, audit.chain), so its first version is dead at
once. With PostgreSQL's default threshold (20% of the table) hundreds of thousands of them
wait for vacuum, and the sealer's partial index (``audit_event_unsealed``, which should hold
only the few pending events) fills with dead entries that every seal steps over
(docs/benchmarks.md). PostgreSQL only; SQLite has no autovacuum settings.
"""

from django.db import migrations

SETTINGS = "autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 20000"


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_event_list_indexes")]

    operations = [
        migrations.RunPython(
            _on_postgresql(f"ALTER TABLE audit_securityevent SET ({SETTINGS})"),
            _on_postgresql(
                "ALTER TABLE audit_securityevent RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)"
            ),
        )
    ]
