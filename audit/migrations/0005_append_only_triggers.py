"""PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the audit tables, whoever asks.

The one UPDATE allowed is the sealer's: it sets the chain fields of an event that has none
yet and changes nothing else. Retention (audit.retention) disables the event trigger for
its DELETE inside its own transaction, which needs the table owner's rights. SQLite (the
embedded development database) has only the model-level refusal.
"""

from django.db import migrations

CHAIN_FIELDS = "ARRAY['sequence', 'previous_hash', 'hash', 'key_id', 'sealed_at']"

INSTALL = f"""
CREATE FUNCTION audit_securityevent_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER audit_securityevent_append_only BEFORE UPDATE OR DELETE ON audit_securityevent
    FOR EACH ROW EXECUTE FUNCTION audit_securityevent_guard();
CREATE TRIGGER audit_securityevent_no_truncate BEFORE TRUNCATE ON audit_securityevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_securityevent_guard();

CREATE FUNCTION audit_checkpoint_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoint is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_guard();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoint_guard();
"""

REMOVE = """
DROP TRIGGER audit_securityevent_append_only ON audit_securityevent;
DROP TRIGGER audit_securityevent_no_truncate ON audit_securityevent;
DROP FUNCTION audit_securityevent_guard();
DROP TRIGGER audit_checkpoint_append_only ON audit_checkpoint;
DROP TRIGGER audit_checkpoint_no_truncate ON audit_checkpoint;
DROP FUNCTION audit_checkpoint_guard();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_chain_existing_events")]

    operations = [migrations.RunPython(_on_postgresql(INSTALL), _on_postgresql(REMOVE))]
