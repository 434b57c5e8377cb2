"""The chain fields move out of the event row into a narrow ``audit_chainlink`` row per
sealed event, and the sealer's queue becomes a table the database fills.

Sealing used to UPDATE the wide event row, which PostgreSQL writes anew into every one of the
table's ten indexes (the trigram index among them): that was most of the sealer's time and
half the event table's dead rows. Now the event row is written once and never updated,
sealing inserts a small row with two indexes and deletes a queue entry (docs/benchmarks.md).
The canonical content and every hash stay the same: the links are copied as they are.

- ``audit_unsealedevent``: an AFTER INSERT trigger on the event table (PostgreSQL and SQLite)
  queues every new event's id, whatever wrote it; the sealer takes them in id order.
- PostgreSQL's append-only triggers: the event table now refuses every UPDATE (the sealer's
  exception is gone); ``audit_chainlink`` refuses UPDATE, DELETE and TRUNCATE. The queue has
  no guard: ``audit_verify`` reports an event left without a link, queued or not.
"""

import django.db.models.deletion
from django.db import migrations, models

QUEUE_PG = """
CREATE FUNCTION audit_securityevent_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_unsealedevent (event_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_securityevent_queue AFTER INSERT ON audit_securityevent
    FOR EACH ROW EXECUTE FUNCTION audit_securityevent_enqueue();
ALTER TABLE audit_unsealedevent SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
"""
UNQUEUE_PG = """
DROP TRIGGER audit_securityevent_queue ON audit_securityevent;
DROP FUNCTION audit_securityevent_enqueue();
"""
QUEUE_SQLITE = """
CREATE TRIGGER audit_securityevent_queue AFTER INSERT ON audit_securityevent
BEGIN
    INSERT INTO audit_unsealedevent (event_id) VALUES (NEW.id);
END
"""
UNQUEUE_SQLITE = "DROP TRIGGER audit_securityevent_queue"

GUARDS = """
CREATE OR REPLACE FUNCTION audit_securityevent_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_securityevent is append-only: % refused', TG_OP
        USING HINT = 'Events are dropped only by manage.py audit_retention (docs/audit.md).';
END
$$;
CREATE FUNCTION audit_chainlink_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_chainlink is append-only: % refused', TG_OP
        USING HINT = 'Links are dropped only by manage.py audit_retention (docs/audit.md).';
END
$$;
CREATE TRIGGER audit_chainlink_append_only BEFORE UPDATE OR DELETE ON audit_chainlink
    FOR EACH ROW EXECUTE FUNCTION audit_chainlink_guard();
CREATE TRIGGER audit_chainlink_no_truncate BEFORE TRUNCATE ON audit_chainlink
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chainlink_guard();
"""
# 0005's guard, which let the sealer set the chain fields of an unsealed row once.
CHAIN_FIELDS = "ARRAY['sequence', 'previous_hash', 'hash', 'key_id', 'sealed_at']"
GUARDS_BEFORE = f"""
DROP TRIGGER audit_chainlink_append_only ON audit_chainlink;
DROP TRIGGER audit_chainlink_no_truncate ON audit_chainlink;
DROP FUNCTION audit_chainlink_guard();
CREATE OR REPLACE FUNCTION audit_securityevent_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.sequence IS NULL AND OLD.hash = '' AND NEW.sequence IS NOT NULL AND NEW.hash <> ''
           AND to_jsonb(NEW) - {CHAIN_FIELDS} = to_jsonb(OLD) - {CHAIN_FIELDS} THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_securityevent is append-only: % refused', TG_OP
        USING HINT = 'Events are dropped only by manage.py audit_retention (docs/audit.md).';
END
$$;
"""

COPY_LINKS = [
    "INSERT INTO audit_chainlink (sequence, event_id, previous_hash, hash, key_id, sealed_at) "
    "SELECT sequence, id, previous_hash, hash, key_id, sealed_at FROM audit_securityevent WHERE sequence IS NOT NULL",
    "INSERT INTO audit_unsealedevent (event_id) SELECT id FROM audit_securityevent WHERE sequence IS NULL",
]
# Backwards, 0005's guard allows exactly this: chain fields set on a row that has none.
COPY_BACK = (
    "UPDATE audit_securityevent AS e SET sequence = l.sequence, previous_hash = l.previous_hash, hash = l.hash, "
    "key_id = l.key_id, sealed_at = l.sealed_at FROM audit_chainlink AS l WHERE l.event_id = e.id"
)


def _run(statements, vendor=None):
    def run(apps, schema_editor):
        if vendor is None or schema_editor.connection.vendor == vendor:
            for sql in [statements] if isinstance(statements, str) else statements:
                schema_editor.execute(sql, params=None)

    return run


def _queue(install: bool):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        sql = {("postgresql", True): QUEUE_PG, ("postgresql", False): UNQUEUE_PG}.get((vendor, install))
        if vendor == "sqlite":
            sql = QUEUE_SQLITE if install else UNQUEUE_SQLITE
        if sql:
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_event_table_autovacuum")]

    operations = [
        migrations.CreateModel(
            name="ChainLink",
            fields=[
                (
                    "sequence",
                    models.BigIntegerField(help_text="Place in the chain, from 1.", primary_key=True, serialize=False),
                ),
                (
                    "event",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="link",
                        to="audit.securityevent",
                    ),
                ),
                ("previous_hash", models.CharField(help_text="Hash of the event one place earlier.", max_length=64)),
                ("hash", models.CharField(help_text="HMAC-SHA256 of the event's canonical content.", max_length=64)),
                ("key_id", models.CharField(help_text="Fingerprint of the HMAC key (never the key).", max_length=16)),
                ("sealed_at", models.DateTimeField(help_text="When the sealer chained it.")),
            ],
        ),
        migrations.CreateModel(
            name="UnsealedEvent",
            fields=[
                (
                    "event",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="audit.securityevent",
                    ),
                ),
            ],
        ),
        migrations.RunPython(_run(COPY_LINKS), _run(COPY_BACK)),
        migrations.RunPython(_run(GUARDS, "postgresql"), _run(GUARDS_BEFORE, "postgresql")),
        migrations.RemoveIndex(model_name="securityevent", name="audit_event_unsealed"),
        migrations.RemoveField(model_name="securityevent", name="hash"),
        migrations.RemoveField(model_name="securityevent", name="key_id"),
        migrations.RemoveField(model_name="securityevent", name="previous_hash"),
        migrations.RemoveField(model_name="securityevent", name="sealed_at"),
        migrations.RemoveField(model_name="securityevent", name="sequence"),
        # After the fields: SQLite rebuilds the table to drop a column, and its triggers with it.
        migrations.RunPython(_queue(True), _queue(False)),
    ]
