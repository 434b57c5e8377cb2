"""Benchmark the security event log on PostgreSQL: chained writes and verification.

Parts (``--parts``, comma-separated, default ``write,verify``):

- ``write``: events per second through ``security_event_record`` at 1 and 32 concurrent
  writers (``--writers``), each a separate process (as gunicorn workers are) recording one
  event per transaction, sealed after commit as in production (a process runs the sealer at
  most once per AUDIT_SEAL_INTERVAL_MS, 1,000 ms unless set, and a thread runs it every 3 s
  as the audit-seal beat task does); then how far
  the sealer was behind (sealed_at - created_at) and how long the last events waited.
- ``verify``: loads the log up to ``--events`` (1,000,000) if it holds fewer (COPY of rows
  chained here exactly as the sealer chains them, continuing the existing chain), writes a
  checkpoint, then times ``manage.py audit_verify`` over all of it, with each ``--jobs`` value.
- ``chaining``: the measurement behind the design (docs/audit.md): raw SQL on a scratch
  table, the same writes chained by each writer inside its own transaction under an
  advisory lock ("serialised") versus chained after commit by one sealer at a time
  ("sealer"), with the writer's transaction ending right after the event or 2 ms later.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_audit .venv/bin/python -m bench.audit
    ... -m bench.audit --parts chaining

The auditor pages' part (list, export) is bench/audit_views.py. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import random
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EVENT_TYPES = [
    "verification.request_created",
    "verification.challenge_sent",
    "verification.challenge_approved",
    "verification.request_verified",
    "verification.request_consumed",
    "auth.login_succeeded",
    "access.grant_activated",
    "directory.person_updated",
]


class _Named:
    """A stand-in for an organisation or person: the recorder reads ``pk`` and ``str()``."""

    def __init__(self, pk: int, label: str):
        self.pk, self.label = pk, label

    def __str__(self) -> str:
        return self.label


# --- write ---------------------------------------------------------------------------------


def _stamp_commit(recorded: list[int], committed: list[tuple[int, float]]) -> None:
    committed.append((recorded[0], time.time()))


def _writer(number: int, seconds: float, barrier, results) -> None:
    from django.db import connection, transaction

    from audit.recorder import security_event_record

    organization = _Named(1 + number % 4, f"Bench client {number % 4}")
    committed: list[tuple[int, float]] = []  # (event id, wall time of its commit)
    barrier.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with transaction.atomic():
            recorded: list[int] = []
            # Registered before the recorder's sealing, so it runs first, right after the commit.
            transaction.on_commit(partial(_stamp_commit, recorded, committed))
            recorded.append(
                security_event_record(
                    event_type=EVENT_TYPES[len(committed) % len(EVENT_TYPES)],
                    actor=None,
                    organization=organization,
                    target=_Named(len(committed), f"Bench Person {len(committed)}"),
                    details={"verification": len(committed), "person": len(committed), "method": "push"},
                ).pk
            )
    results.put(committed)
    connection.close()


def _ms_percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    values = sorted(values)
    p50, p99 = values[len(values) // 2], values[min(len(values) - 1, int(0.99 * len(values)))]
    return f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {values[-1]:.0f} ms"


def _beat(stop: threading.Event) -> None:
    """What Celery beat's audit-seal task does in production: the sealer every 3 s."""
    from django.db import connection

    from audit.chain import security_event_seal

    while not stop.wait(3.0):
        security_event_seal()
    connection.close()


def measure_writes(writers: int, seconds: float) -> None:
    from django.db import connections

    from audit.models import SecurityEvent

    connections.close_all()  # each forked writer opens its own
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(writers + 1), context.Queue()
    processes = [context.Process(target=_writer, args=(n, seconds, barrier, results)) for n in range(writers)]
    for process in processes:
        process.start()
    stop_beat = threading.Event()
    beat = threading.Thread(target=_beat, args=(stop_beat,), daemon=True)  # after the forks
    beat.start()
    barrier.wait()
    began = time.monotonic()
    committed = dict(pair for _ in processes for pair in results.get())
    elapsed = time.monotonic() - began
    for process in processes:
        process.join()
    events = SecurityEvent.objects.filter(pk__in=list(committed))
    waited = time.monotonic()
    while events.filter(link__isnull=True).exists() and time.monotonic() - waited < 30:
        time.sleep(0.05)
    drained = time.monotonic() - waited
    stop_beat.set()
    beat.join()
    rows = list(events.values_list("pk", "created_at", "link__sealed_at"))
    after_commit = [(sealed.timestamp() - committed[pk]) * 1000 for pk, _, sealed in rows if sealed]
    after_record = [(sealed - created).total_seconds() * 1000 for _, created, sealed in rows if sealed]
    rate = len(committed) / elapsed
    print(f"  {writers:2d} writer(s): {len(committed):,} events in {elapsed:.1f} s = {rate:,.0f} events/s")
    print(f"      sealed after its commit:  {_ms_percentiles(after_commit)}")
    print(f"      sealed after created_at:  {_ms_percentiles(after_record)}")
    print(f"      all sealed {drained * 1000:.0f} ms after the writers stopped")


def measure_sealer(count: int = 20_000) -> None:
    """The sealer alone: ``count`` committed, unsealed events, then one security_event_seal()."""
    from django.db import connection
    from django.utils import timezone

    from audit.chain import security_event_seal

    blank = ("organization_label", "target_type", "target_label", "request_id", "user_agent")
    columns = ", ".join(("event_type", "actor_kind", "actor_label", "organization_id", "target_id", *blank))
    columns += ", details, created_at"
    now = timezone.now()
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY audit_securityevent ({columns}) FROM STDIN") as copy:
        for n in range(count):
            fixed = ("verification.challenge_sent", "staff", "bench", 1, str(n))
            copy.write_row((*fixed, *[""] * len(blank), json.dumps({"n": n}), now))
    began = time.monotonic()
    sealed = security_event_seal()
    elapsed = time.monotonic() - began
    print(
        f"  the sealer alone: {sealed:,} pending events chained in {elapsed:.2f} s = {sealed / elapsed:,.0f} events/s"
    )


def part_write(args) -> None:
    print(f"\nwrite: security_event_record, one event per transaction, {args.seconds:.0f} s per level")
    for writers in (int(w) for w in args.writers.split(",")):
        measure_writes(writers, args.seconds)
    measure_sealer()


# --- load and verify -----------------------------------------------------------------------


def _rows(count: int, first_id: int, head: tuple[int, str], started: datetime):
    """``count`` events chained after ``head``, as (COPY values, hash) rows."""
    from audit.chain import event_hash
    from audit.keys import hmac_current

    key_id, key = hmac_current()
    sequence, previous = head
    rng = random.Random(first_id)
    for n in range(count):
        created = started + timedelta(milliseconds=30 * n)
        sealed = created + timedelta(milliseconds=3)
        org = 1 + n % 20
        values = (
            first_id + n,
            sequence + n + 1,
            previous,
            key_id,
            sealed,
            EVENT_TYPES[n % len(EVENT_TYPES)],
            "staff",
            100 + n % 500,
            f"tech{n % 500}@msp.example",
            org,
            f"Client {org}",
            "accounts.person",
            str(n % 50_000),
            f"Person {n % 50_000}",
            f"{rng.getrandbits(128):032x}",
            f"10.{n % 250}.{(n // 250) % 250}.{n % 7 + 1}",
            "Mozilla/5.0 (bench)",
            {"verification": n, "person": n % 50_000, "method": "push"},
            created,
        )
        digest = event_hash(values, key)
        previous = digest
        yield values, digest


def load_events(target: int) -> None:
    from django.db import connection

    from audit.chain import EVENT_FIELDS, LINK_FIELDS, chain_head, security_event_seal
    from audit.models import SecurityEvent

    security_event_seal()
    have = SecurityEvent.objects.count()
    if have >= target:
        print(f"load: {have:,} events already there")
        return
    missing = target - have
    head = chain_head()
    first_id = (SecurityEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    started = datetime.now(UTC) - timedelta(milliseconds=30 * missing + 60_000)
    event_columns = ", ".join(("id", *EVENT_FIELDS))
    link_columns = ", ".join(("event_id", *LINK_FIELDS, "hash"))
    began = time.monotonic()
    links = []
    with connection.cursor() as cursor:
        # Loaded already linked: the queue trigger is off for the COPY (the table owner's right).
        cursor.execute("ALTER TABLE audit_securityevent DISABLE TRIGGER audit_securityevent_queue")
        with cursor.cursor.copy(f"COPY audit_securityevent ({event_columns}) FROM STDIN") as copy:
            for values, digest in _rows(missing, first_id, head, started):
                copy.write_row((values[0], *values[5:-2], json.dumps(values[-2]), values[-1]))
                links.append((*values[:5], digest))
        cursor.execute("ALTER TABLE audit_securityevent ENABLE TRIGGER audit_securityevent_queue")
        with cursor.cursor.copy(f"COPY audit_chainlink ({link_columns}) FROM STDIN") as copy:
            for link in links:
                copy.write_row(link)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('audit_securityevent', 'id'), MAX(id)) FROM audit_securityevent"
        )
        cursor.execute("VACUUM ANALYZE audit_securityevent")
        cursor.execute("VACUUM ANALYZE audit_chainlink")
    print(f"load: {missing:,} chained events by COPY in {time.monotonic() - began:.1f} s")


def part_verify(args) -> None:
    from django.core.management import call_command

    from audit.checkpoints import checkpoint_write

    load_events(args.events)
    checkpoint_write(force=True)
    for jobs in (int(j) for j in args.jobs.split(",")):
        out = io.StringIO()
        began = time.monotonic()
        call_command("audit_verify", "--jobs", str(jobs), stdout=out)
        elapsed = time.monotonic() - began
        print(f"\nverify: manage.py audit_verify --jobs {jobs} (in this process, warm)")
        for line in out.getvalue().splitlines():
            print(f"  {line}")
        print(f"  wall time {elapsed:.1f} s")


# --- chaining: serialised writers versus one sealer ---------------------------------------

_SCRATCH = "bench_chain_scratch"


def _scratch_connect():
    import psycopg
    from django.db import connection

    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"],
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        autocommit=True,
    )


def _scratch_reset() -> None:
    with _scratch_connect() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {_SCRATCH}")
        conn.execute(
            f"CREATE TABLE {_SCRATCH} (id bigserial PRIMARY KEY, event_type varchar(64), details jsonb, "
            "created_at timestamptz DEFAULT now(), sequence bigint UNIQUE, previous_hash varchar(64), "
            "hash varchar(64))"
        )
        conn.execute(f"CREATE INDEX ON {_SCRATCH} (id) WHERE sequence IS NULL")
        conn.execute(f"INSERT INTO {_SCRATCH} (event_type, details, sequence, hash) VALUES ('genesis', '{{}}', 0, '')")


def _mac(text: str) -> str:
    import hashlib
    import hmac

    return hmac.new(b"bench-key", text.encode(), hashlib.sha256).hexdigest()


_HEAD = f"SELECT sequence, hash FROM {_SCRATCH} WHERE sequence IS NOT NULL ORDER BY sequence DESC LIMIT 1"


def _serialised_write(conn, extra_ms: float) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(42)")
        sequence, previous = conn.execute(_HEAD).fetchone()
        conn.execute(
            f"INSERT INTO {_SCRATCH} (event_type, details, sequence, previous_hash, hash) VALUES (%s, %s, %s, %s, %s)",
            ["x.y", '{"a": 1}', sequence + 1, previous, _mac(f"x.y{previous}")],
        )
        if extra_ms:
            time.sleep(extra_ms / 1000)  # the caller's transaction goes on, holding the chain


def _sealer_write(conn, extra_ms: float) -> None:
    with conn.transaction():
        conn.execute(f"INSERT INTO {_SCRATCH} (event_type, details) VALUES (%s, %s)", ["x.y", '{"a": 1}'])
        if extra_ms:
            time.sleep(extra_ms / 1000)
    while True:  # the same hand-over as audit.chain.security_event_seal
        with conn.transaction():
            if not conn.execute("SELECT pg_try_advisory_xact_lock(43)").fetchone()[0]:
                return
            sequence, previous = conn.execute(_HEAD).fetchone()
            pending = conn.execute(
                f"SELECT id, event_type FROM {_SCRATCH} WHERE sequence IS NULL ORDER BY id LIMIT 1000"
            ).fetchall()
            params = []
            for row_id, event_type in pending:
                sequence += 1
                digest = _mac(f"{event_type}{previous}")
                params.append((sequence, previous, digest, row_id))
                previous = digest
            if params:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        f"UPDATE {_SCRATCH} SET sequence = %s, previous_hash = %s, hash = %s WHERE id = %s", params
                    )
        if (
            not params
            and not conn.execute(f"SELECT EXISTS (SELECT 1 FROM {_SCRATCH} WHERE sequence IS NULL)").fetchone()[0]
        ):
            return


def _chaining_run(strategy: str, writers: int, extra_ms: float, seconds: float) -> float:
    _scratch_reset()
    write = _serialised_write if strategy == "serialised" else _sealer_write
    counts = [0] * writers
    barrier = threading.Barrier(writers + 1)

    def writer(n: int) -> None:
        with _scratch_connect() as conn:
            barrier.wait()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                write(conn, extra_ms)
                counts[n] += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - began)


def part_chaining(args) -> None:
    print(f"\nchaining: raw SQL on a scratch table, {args.seconds:.0f} s per cell, events/s")
    levels = [int(w) for w in args.writers.split(",")]
    print(f"  {'strategy':10s} {'after the event':>16s} " + " ".join(f"{w:>3d} writers" for w in levels))
    for extra_ms in (0, 2):
        for strategy in ("serialised", "sealer"):
            rates = [_chaining_run(strategy, w, extra_ms, args.seconds) for w in levels]
            print(f"  {strategy:10s} {extra_ms:>13d} ms " + " ".join(f"{r:11,.0f}" for r in rates))
    with _scratch_connect() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {_SCRATCH}")


PARTS = {"write": part_write, "verify": part_verify, "chaining": part_chaining}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="write,verify", help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log for verify (default 1M)")
    parser.add_argument("--writers", default="1,32", help="concurrent writers per level (default 1,32)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per write level (default 10)")
    parser.add_argument("--jobs", default="1,2", help="audit_verify --jobs values to time (default 1,2)")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")

    from bench._setup import setup_django

    # As in production: each process runs the sealer after a commit at most once a second
    # (the test settings seal after every commit).
    os.environ.setdefault("AUDIT_SEAL_INTERVAL_MS", "1000")
    setup_django()
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, PostgreSQL {version} on this machine, "
        f"AUDIT_SEAL_INTERVAL_MS={settings.AUDIT_SEAL_INTERVAL_MS}"
    )
    for part in parts:
        PARTS[part](args)


if __name__ == "__main__":
    main()
