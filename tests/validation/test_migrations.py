"""Data migrations of the validation app."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.helpers import migrated_back_to
from validation.models import SendRecord


@pytest.mark.django_db(transaction=True)
def test_send_records_kept_from_before_are_numbered_oldest_first():
    with migrated_back_to(("validation", "0005_method_choices")) as apps:
        Record = apps.get_model("validation", "SendRecord")
        now = timezone.now()
        minutes_ago = [3, 1, 2, 1]  # inserted out of time order, two at the same time
        ids = [
            Record.objects.create(kind="challenge", destination_hash="0" * 64, created_at=now - timedelta(minutes=m)).pk
            for m in minutes_ago
        ]

    numbered = list(SendRecord.objects.order_by("sequence").values_list("pk", "sequence"))
    assert numbered == [(ids[0], 1), (ids[2], 2), (ids[1], 3), (ids[3], 4)]
