"""Two of the event table's indexes duplicated others; every event paid for writing them.

- ``event_type``: Django gave the field two indexes on PostgreSQL, a plain one and one with
  ``varchar_pattern_ops`` for ``LIKE 'access.%'`` (a group of types). The pattern one
  serves equality too; the plain one was never used (``pg_stat_user_indexes``: 0 scans over
  the auditor benchmark's runs). The pattern index stays, renamed ``audit_event_type_pattern``
  and declared in the model, and the plain one goes.
- ``organization_id``: the composite ``(organization_id, created_at)`` index leads with it.

On a log that already holds millions of events the drops are CONCURRENTLY (the table is
written all the time) and the kept index is renamed, not rebuilt, so this migration is not
atomic. SQLite (the embedded development database) gets a plain index of the same name.
"""

from django.db import migrations, models

PLAIN_TYPE = "audit_securityevent_event_type_ea9cae43"
PATTERN_TYPE = "audit_securityevent_event_type_ea9cae43_like"
ORGANIZATION = "audit_securityevent_organization_id_94185e4e"
KEPT = "audit_event_type_pattern"


class OnVendor(migrations.RunSQL):
    """RunSQL on one database vendor only."""

    def __init__(self, vendor, *args, **kwargs):
        self.vendor = vendor
        super().__init__(*args, **kwargs)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("audit", "0008_chain_links")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="securityevent", name="event_type", field=models.CharField(max_length=64)
                ),
                migrations.AlterField(
                    model_name="securityevent",
                    name="organization_id",
                    field=models.BigIntegerField(blank=True, null=True),
                ),
                migrations.AddIndex(
                    model_name="securityevent",
                    index=models.Index(fields=["event_type"], name=KEPT, opclasses=["varchar_pattern_ops"]),
                ),
            ],
            database_operations=[
                OnVendor(
                    "postgresql",
                    sql=[
                        f"DROP INDEX CONCURRENTLY IF EXISTS {PLAIN_TYPE}",
                        f"DROP INDEX CONCURRENTLY IF EXISTS {ORGANIZATION}",
                        f"ALTER INDEX IF EXISTS {PATTERN_TYPE} RENAME TO {KEPT}",
                        # Only where the pattern index was missing (built by hand without it).
                        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {KEPT} "
                        "ON audit_securityevent (event_type varchar_pattern_ops)",
                    ],
                    reverse_sql=[
                        f"ALTER INDEX {KEPT} RENAME TO {PATTERN_TYPE}",
                        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {PLAIN_TYPE} ON audit_securityevent (event_type)",
                        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {ORGANIZATION} ON audit_securityevent (organization_id)",
                    ],
                ),
                OnVendor(
                    "sqlite",
                    sql=[
                        f"DROP INDEX IF EXISTS {PLAIN_TYPE}",
                        f"DROP INDEX IF EXISTS {ORGANIZATION}",
                        f"CREATE INDEX IF NOT EXISTS {KEPT} ON audit_securityevent (event_type)",
                    ],
                    reverse_sql=[
                        f"DROP INDEX IF EXISTS {KEPT}",
                        f"CREATE INDEX IF NOT EXISTS {PLAIN_TYPE} ON audit_securityevent (event_type)",
                        f"CREATE INDEX IF NOT EXISTS {ORGANIZATION} ON audit_securityevent (organization_id)",
                    ],
                ),
            ],
        )
    ]
