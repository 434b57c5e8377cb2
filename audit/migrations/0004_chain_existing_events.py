"""Fold the events recorded before the hash chain existed into it, in id order.

The sealer itself does it, with this migration's model, so the chain is exactly what
audit_verify expects. Needs AUDIT_HMAC_KEY (production mode refuses to start without it).
"""

from django.db import migrations


def chain_existing_events(apps, schema_editor):
    from audit.chain import security_event_seal

    security_event_seal(model=apps.get_model("audit", "SecurityEvent"), using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_chain_and_checkpoints")]

    operations = [migrations.RunPython(chain_existing_events, migrations.RunPython.noop)]
