"""Events recorded before the hash chain existed are folded into it by a data migration."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit.chain import GENESIS_HASH
from audit.models import SecurityEvent
from audit.verify import chain_verify

BEFORE_CHAIN = [("audit", "0002_event_type_without_choices")]


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_chains_earlier_events_in_id_order():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_CHAIN)
    try:
        Event = executor.loader.project_state(BEFORE_CHAIN).apps.get_model("audit", "SecurityEvent")
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
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    chained = list(SecurityEvent.objects.order_by("sequence").values_list("id", "sequence", "previous_hash"))
    assert [(pk, sequence) for pk, sequence, _ in chained] == list(zip(ids, range(1, 5), strict=True))
    assert chained[0][2] == GENESIS_HASH
    assert chain_verify().ok
