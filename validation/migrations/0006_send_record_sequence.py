"""SendRecord.sequence: each row's place in the count of all sends, for the global ceilings.

The rows already there (at most a day's: the expiry sweep drops older ones) are numbered in
the order the limits count them, oldest first."""

from django.db import migrations, models


def number_existing(apps, schema_editor):
    SendRecord = apps.get_model("validation", "SendRecord")
    rows = SendRecord.objects.using(schema_editor.connection.alias).order_by("created_at", "id")
    for number, record in enumerate(rows.only("pk").iterator(), start=1):
        SendRecord.objects.using(schema_editor.connection.alias).filter(pk=record.pk).update(sequence=number)


class Migration(migrations.Migration):
    dependencies = [
        ("validation", "0005_method_choices"),
    ]

    operations = [
        migrations.AddField(
            model_name="sendrecord",
            name="sequence",
            field=models.BigIntegerField(editable=False, null=True),
        ),
        migrations.RunPython(number_existing, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="sendrecord",
            name="sequence",
            field=models.BigIntegerField(editable=False, unique=True),
        ),
    ]
