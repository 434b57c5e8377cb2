"""Events recorded before the hash chain existed are folded into it by a data migration,
and the chain fields later move, unchanged, from the event rows to their links (0008)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.chain import GENESIS_HASH
from audit.models import ChainLink
from audit.verify import chain_verify
from tests.helpers import migrated_back_to

BEFORE_CHAIN = ("audit", "0002_event_type_without_choices")


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_chains_earlier_events_in_id_order():
    with migrated_back_to(BEFORE_CHAIN) as apps:
        Event = apps.get_model("audit", "SecurityEvent")
        now = timezone.now()
        ids = [
            Event.objects.create(
                event_type="auth.login_succeeded",
                actor_kind="staff",
                actor_id=n,
                actor_label=f"staff{n}@msp.example",
                details={"n": n},
                created_at=now - timedelta(minutes=10 - n),
            ).pk
            for n in range(4)
        ]

    chained = list(ChainLink.objects.order_by("sequence").values_list("event_id", "sequence", "previous_hash"))
    assert [(pk, sequence) for pk, sequence, _ in chained] == list(zip(ids, range(1, 5), strict=True))
    assert chained[0][2] == GENESIS_HASH
    assert chain_verify().ok


@pytest.mark.django_db(transaction=True)
def test_links_and_pending_events_move_out_of_the_event_rows_unchanged():
    with migrated_back_to(("audit", "0007_event_table_autovacuum")) as apps:
        from audit.chain import event_hash
        from audit.keys import hmac_current

        Event = apps.get_model("audit", "SecurityEvent")
        key_id, key = hmac_current()
        now = timezone.now()
        fields = dict(event_type="auth.logout", actor_kind="system", details={}, created_at=now)
        sealed = Event.objects.create(**fields)
        # HASHED_FIELDS' order: id, sequence, previous_hash, key_id, sealed_at, then the event's own columns.
        own = ["auth.logout", "system", None, "", None, "", "", "", "", "", None, "", {}, now]
        digest = event_hash([sealed.pk, 1, GENESIS_HASH, key_id, now, *own], key)
        with connection.cursor() as cursor:  # the sealer's one allowed UPDATE at 0007
            cursor.execute(
                "UPDATE audit_securityevent SET sequence = 1, previous_hash = %s, hash = %s, key_id = %s,"
                " sealed_at = %s WHERE id = %s",
                [GENESIS_HASH, digest, key_id, now, sealed.pk],
            )
        waiting = Event.objects.create(**fields)

    from audit.models import UnsealedEvent

    assert list(ChainLink.objects.values_list("event_id", "sequence", "hash")) == [(sealed.pk, 1, digest)]
    assert list(UnsealedEvent.objects.values_list("event_id", flat=True)) == [waiting.pk]
    assert chain_verify().ok
