"""Fold the events recorded before the hash chain existed into it, in id order.

It chains them exactly as the sealer did at this point (the chain fields on the event
row; 0008 moved them to ``audit_chainlink``), with the sealer's canonical content and
hash, so the chain is what audit_verify expects. Needs AUDIT_HMAC_KEY (production mode
refuses to start without it).
"""

from django.db import migrations


def chain_existing_events(apps, schema_editor):
    from django.utils import timezone

    from audit import keys
    from audit.chain import GENESIS_HASH, HASHED_FIELDS, event_hash

    events = apps.get_model("audit", "SecurityEvent").objects.using(schema_editor.connection.alias)
    key_id, key = keys.hmac_current()
    sealed_at = timezone.now()
    previous = GENESIS_HASH
    rows = list(events.filter(sequence__isnull=True).order_by("id").values_list(*HASHED_FIELDS))
    for sequence, row in enumerate(rows, start=1):
        values = (row[0], sequence, previous, key_id, sealed_at, *row[5:])
        previous = event_hash(values, key)
        events.filter(pk=row[0]).update(
            sequence=sequence, previous_hash=values[2], hash=previous, key_id=key_id, sealed_at=sealed_at
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_chain_and_checkpoints")]

    operations = [migrations.RunPython(chain_existing_events, migrations.RunPython.noop)]
