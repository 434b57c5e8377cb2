"""The chain under concurrent writers, with real transactions: no fork, no event missed."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone

from audit import chain
from audit.events import EventType
from audit.models import ChainLink, SecurityEvent
from audit.recorder import security_event_record
from audit.verify import chain_verify
from tests.audit.conftest import ON_POSTGRESQL, postgresql_only

pytestmark = pytest.mark.django_db(transaction=True)
WRITERS = 32 if ON_POSTGRESQL else 8
TRANSACTIONS = 12


class Rollback(Exception):
    pass


def writer(number: int, barrier: threading.Barrier) -> int:
    """Transactions of one to three events, some doing more work after recording, one in
    four rolled back. Returns how many events it committed."""
    barrier.wait()
    committed = 0
    try:
        for n in range(TRANSACTIONS):
            events = 1 + (number + n) % 3
            try:
                with transaction.atomic():
                    for k in range(events):
                        security_event_record(event_type=EventType.AUTH_LOGOUT, details={"w": number, "t": n, "k": k})
                    if n % 4 == 3:
                        raise Rollback
                    if n % 3 == 0:
                        time.sleep(0.002)  # the caller's transaction goes on after recording
                committed += events
            except Rollback:
                pass
    finally:
        connection.close()
    return committed


def test_concurrent_writers_make_one_chain_without_gaps_or_forks():
    barrier = threading.Barrier(WRITERS)
    with ThreadPoolExecutor(WRITERS) as pool:
        committed = sum(pool.map(writer, range(WRITERS), [barrier] * WRITERS))

    # The writers' after-commit runs sealed nearly everything. A run that found the lock
    # taken while the holder ran its last batch (AFTER_COMMIT_BATCHES) leaves its events to
    # the next run in any process or to the beat's (docs/audit.md): a few at the end at most.
    assert SecurityEvent.objects.filter(link__isnull=True).count() <= WRITERS
    chain.security_event_seal()  # the beat task's run
    assert SecurityEvent.objects.filter(link__isnull=True).count() == 0
    sequences = list(ChainLink.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, committed + 1))
    assert not SecurityEvent.objects.filter(details__t=3).exists()  # rolled back: never recorded
    report = chain_verify()
    assert report.ok, report.problems
    lags = [link.sealed_at - link.event.created_at for link in ChainLink.objects.select_related("event")]
    assert max(lags) < timedelta(seconds=5)


class SealerA:
    """Another process, A, in a thread: it runs ``work`` (recording an event, whose sealing
    runs after its commit, or sealing itself), and each of the first ``pauses`` batches it
    seals holds the chain lock until the test releases that turn."""

    def __init__(self, monkeypatch, work, *, pauses: int = 1):
        self.turns = [(threading.Event(), threading.Event()) for _ in range(pauses)]
        self.batches: list[int] = []  # how many events each of A's batches sealed
        real_batch = chain._seal_batch

        def slow_batch(using):
            sealed = real_batch(using)
            if threading.current_thread() is self.thread:
                self.batches.append(len(sealed))
                if len(self.batches) <= len(self.turns):
                    holding, release = self.turns[len(self.batches) - 1]
                    holding.set()
                    release.wait(10)
            return sealed

        monkeypatch.setattr(chain, "_seal_batch", slow_batch)
        self.thread = threading.Thread(target=self._run, args=(work,), name="sealer-a")
        self.thread.start()

    @staticmethod
    def _run(work) -> None:
        try:
            work()
        finally:
            connection.close()


def record_and_commit(**details):
    with transaction.atomic():
        return security_event_record(event_type=EventType.AUTH_LOGOUT, details=details)


@postgresql_only
def test_an_event_committed_while_another_process_seals_is_sealed_by_that_process(monkeypatch):
    """The sealer's hand-over: B commits while A holds the chain lock, so B's own attempt to
    seal gives up at once; A looks again after letting go and seals B's event."""
    security_event_record(event_type=EventType.AUTH_LOGOUT)  # sealed now (autocommit)
    a = SealerA(monkeypatch, lambda: record_and_commit(by="a"))  # A's after-commit run holds the lock
    holding, release = a.turns[0]
    assert holding.wait(10)
    event_b = record_and_commit(by="b")
    assert chain.security_event_seal() == 0  # A holds the lock: B gives up at once
    assert not ChainLink.objects.filter(event=event_b).exists()
    release.set()
    a.thread.join(10)

    assert ChainLink.objects.get(event=event_b).sequence == 3
    assert chain_verify().ok


@postgresql_only
def test_an_after_commit_run_looks_once_more_and_leaves_the_rest_to_the_next_run(monkeypatch):
    """A run after a commit does not chase the tail while others keep committing: it seals
    what was committed before it began, looks once more after letting go (B's event,
    committed while its first batch held the lock) and leaves what was committed during that
    look (C's) to the next run, here the beat task's."""
    security_event_record(event_type=EventType.AUTH_LOGOUT)  # sealed now (autocommit)
    a = SealerA(monkeypatch, lambda: record_and_commit(by="a"), pauses=chain.AFTER_COMMIT_BATCHES)
    committed_meanwhile = []
    for holding, release in a.turns:
        assert holding.wait(10)
        committed_meanwhile.append(record_and_commit())  # its own run after the commit gives up
        release.set()
    a.thread.join(10)

    event_b, event_c = committed_meanwhile
    assert a.batches == [1, 1]  # A's event, then B's; no third look
    assert ChainLink.objects.get(event=event_b).sequence == 3
    assert not ChainLink.objects.filter(event=event_c).exists()
    assert chain.security_event_seal() == 1  # the beat task's run
    assert ChainLink.objects.get(event=event_c).sequence == 4
    assert chain_verify().ok


@postgresql_only
def test_a_writer_waits_for_the_sealer_when_the_chain_falls_behind(monkeypatch):
    """Back-pressure: while another process holds the chain lock and an event has waited more
    than BEHIND for its link, a writer does not go back to writing: it waits for the lock
    and seals, so the chain cannot fall further behind."""
    a = SealerA(monkeypatch, chain.security_event_seal)
    holding, release = a.turns[0]
    assert holding.wait(10)
    with time_machine.travel(timezone.now() - chain.BEHIND - timedelta(seconds=1)):
        late = record_and_commit(late=True)
    threading.Timer(0.3, release.set).start()
    assert chain.security_event_seal() == 1  # waited for A's lock, then sealed the late event
    a.thread.join(10)
    assert ChainLink.objects.filter(event=late).exists()
    assert chain_verify().ok
