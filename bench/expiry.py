"""Benchmark JIT expiry: how late a grant's django-guardian mirror is cleaned after it
expires, with one real Celery worker on Redis and PostgreSQL, and what the authorization
check costs.

1. Seeds (in this process, not timed) technicians spread over two organisations, one role,
   an eligibility and an approved request per grant, and --history ended grants of the past
   year (loaded once, kept between runs).
2. Starts one Celery worker (`celery -A config worker`, its pool of threads, 2 by default).
   No beat: the lag measured is the exact-time task's, not the 30-second sweep's.
3. Activates --grants grants through `access.services.grant_activate`, exactly as the portal
   does (mirror applied, expiry task queued for `expires_at` on commit), with expiries
   spread evenly over --spread seconds, the first --lead seconds after the start.
4. While they are all in force, times `grant_allows` for random technicians, organisations
   and actions (allowed and refused): microseconds and queries per check, and the plan.
5. Watches guardian's table every 50 ms until every mirrored permission is gone, then prints
   the lag between `expires_at` and the cleanup: as the worker recorded it
   (`Grant.cleanup_lag`) and as an outside observer saw the rows disappear.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_expiry \\
    REDIS_URL=redis://127.0.0.1:6379/6 .venv/bin/python bench/expiry.py

Use a Redis database number nothing else uses: the benchmark flushes it.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ORG_SLUGS = ("bench-expiry-a", "bench-expiry-b")
ROLE_NAME = "Bench expiry role"


def configure() -> dict[str, str]:
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url.startswith("redis"):
        sys.exit("REDIS_URL must point at Redis, e.g. redis://127.0.0.1:6379/6")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    os.environ.setdefault("PORTAL_VAR_DIR", "/tmp/portal-bench-expiry")
    os.environ["LOG_LEVEL"] = "WARNING"
    from bench._setup import setup_django

    setup_django()
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return dict(os.environ)


# --- Seeding ------------------------------------------------------------------------------


def seed(count: int, technicians: int, history: int) -> list[int]:
    """Approved requests, one per (technician, organisation) pair; returns their ids."""
    from django.contrib.auth.models import Group
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone
    from guardian.models import UserObjectPermission

    from access.models import AccessRequest, Approval, Eligibility, Grant, Role
    from accounts.models import Organization, User
    from accounts.models import Role as StaffRole

    orgs = [Organization.objects.get_or_create(slug=s, defaults={"name": s})[0] for s in ORG_SLUGS]
    if count > technicians * len(orgs):
        sys.exit(f"--grants {count} needs at least {count // len(orgs) + 1} --technicians")
    # Leftovers of an earlier run, except the history (security events stay: the log is append-only).
    current = {"organization__in": orgs}
    old_grants = Grant.objects.filter(**current).exclude(request__ticket_reference__startswith="HIST-")
    UserObjectPermission.objects.filter(
        object_pk__in=[str(o.pk) for o in orgs], permission__codename__startswith="jit_"
    ).delete()
    Approval.objects.filter(request__organization__in=orgs).delete()
    old_grants.delete()
    AccessRequest.objects.filter(**current, grant__isnull=True).delete()
    Eligibility.objects.filter(**current).delete()

    approvers = Group.objects.get_or_create(name=StaffRole.APPROVER.value)[0]
    role, _ = Role.objects.get_or_create(
        name=ROLE_NAME,
        defaults={
            "actions": ["password_reset", "account_unlock"],
            "max_duration": timedelta(hours=8),
            "approver_group": approvers,
            "requires_mfa_reauth": False,
        },
    )
    group = Group.objects.get_or_create(name=StaffRole.TECHNICIAN.value)[0]
    existing = set(User.objects.filter(email__startswith="bench-expiry-").values_list("email", flat=True))
    new = [f"bench-expiry-{n}@bench.example" for n in range(technicians)]
    User.objects.bulk_create([User(email=e) for e in new if e not in existing])
    users = list(User.objects.filter(email__in=new).order_by("pk"))
    User.groups.through.objects.bulk_create(
        [User.groups.through(user_id=u.pk, group_id=group.pk) for u in users], ignore_conflicts=True
    )
    organization_type = ContentType.objects.get_for_model(Organization)
    from django.contrib.auth.models import Permission

    assignment = Permission.objects.get(content_type=organization_type, codename="work_on_organization")
    UserObjectPermission.objects.bulk_create(
        [
            UserObjectPermission(user=u, permission=assignment, content_type=organization_type, object_pk=str(o.pk))
            for u in users
            for o in orgs
        ],
        ignore_conflicts=True,
    )
    if Grant.objects.filter(**current).count() != history:
        history_load(users, orgs, role, history)
    pairs = [(users[n // len(orgs)], orgs[n % len(orgs)]) for n in range(count)]
    Eligibility.objects.bulk_create([Eligibility(technician=u, role=role, organization=o) for u, o in pairs])
    now = timezone.now()
    requests = AccessRequest.objects.bulk_create(
        [
            AccessRequest(
                technician=u,
                role=role,
                organization=o,
                justification="Benchmark of expiry",
                ticket_reference=f"BENCH-{n}",
                requested_duration=timedelta(hours=1),
                status=AccessRequest.Status.APPROVED,
                review_expires_at=now,
                decided_at=now,
                activate_by=now + timedelta(days=1),
            )
            for n, (u, o) in enumerate(pairs)
        ]
    )
    return [r.pk for r in requests]


def history_load(users, orgs, role, history: int) -> None:
    """Ended grants of the past year (a third revoked early), the backlog a real portal keeps:
    the check must still read only the grants in force."""
    from django.utils import timezone

    from access.models import AccessRequest, Grant

    Grant.objects.filter(organization__in=orgs).delete()
    AccessRequest.objects.filter(organization__in=orgs).delete()
    rng = random.Random(11)
    now = timezone.now()
    for batch in range(0, history, 5000):
        size = min(5000, history - batch)
        picks = [
            (rng.choice(users), rng.choice(orgs), now - timedelta(minutes=rng.randrange(90, 525_600)))
            for _ in range(size)
        ]
        requests = AccessRequest.objects.bulk_create(
            [
                AccessRequest(
                    technician=u,
                    role=role,
                    organization=o,
                    justification="History",
                    ticket_reference=f"HIST-{batch + n}",
                    requested_duration=timedelta(hours=1),
                    status=AccessRequest.Status.ENDED,
                    created_at=start,
                    review_expires_at=start,
                    decided_at=start,
                )
                for n, (u, o, start) in enumerate(picks)
            ]
        )
        Grant.objects.bulk_create(
            [
                Grant(
                    request=r,
                    technician=u,
                    role=role,
                    organization=o,
                    starts_at=start,
                    expires_at=start + timedelta(hours=1),
                    revoked_at=start + timedelta(minutes=20) if n % 3 == 0 else None,
                    mirror_applied_at=start,
                    mirror_cleaned_at=start + timedelta(hours=1),
                    cleanup_lag=timedelta(0),
                )
                for n, (r, (u, o, start)) in enumerate(zip(requests, picks, strict=True))
            ]
        )
    print(f"loaded {history} ended grants as history")


# --- Processes ----------------------------------------------------------------------------


def start_worker(env: dict[str, str], concurrency: int, log: Path) -> subprocess.Popen:
    venv_bin = Path(sys.executable).parent
    args = [str(venv_bin / "celery"), "-A", "config", "worker", f"--concurrency={concurrency}", "--loglevel=INFO"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-O", "fair"]
    worker = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the worker did not start; its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return worker


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


# --- Measurements -------------------------------------------------------------------------


def activate_all(request_ids: list[int], *, lead: float, spread: float) -> tuple[list[float], float]:
    """Activate every request so that expiries fall evenly in [start + lead, start + lead + spread]."""
    from django.utils import timezone

    from access import services
    from access.models import AccessRequest

    first_expiry = timezone.now() + timedelta(seconds=lead)
    step = spread / max(len(request_ids) - 1, 1)
    timings = []
    for n, pk in enumerate(request_ids):
        access_request = AccessRequest.objects.select_related("technician").get(pk=pk)
        remaining = first_expiry + timedelta(seconds=n * step) - timezone.now()
        if remaining < timedelta(seconds=2):
            sys.exit(f"activation fell behind the expiries at grant {n}: raise --lead")
        AccessRequest.objects.filter(pk=pk).update(requested_duration=remaining)
        access_request.requested_duration = remaining
        began = time.perf_counter()
        services.grant_activate(actor=access_request.technician, access_request=access_request)
        timings.append(time.perf_counter() - began)
    return timings, (first_expiry - timezone.now()).total_seconds()


def time_checks(request_ids: list[int], checks: int) -> tuple[list[float], float, str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from access.authorization import grant_allows, granted_actions
    from access.models import AccessRequest
    from accounts.models import Organization

    rows = list(AccessRequest.objects.filter(pk__in=request_ids).select_related("technician"))
    orgs = list(Organization.objects.filter(slug__in=ORG_SLUGS))
    rng = random.Random(7)
    cases = []
    for _ in range(checks):
        row = rng.choice(rows)
        # Half allowed (own organisation, an action of the role), half refused (other org or action).
        org = row.organization if rng.random() < 0.75 else rng.choice(orgs)
        action = rng.choice(["password_reset", "account_unlock", "password_reset", "mfa_reset"])
        cases.append((row.technician, org, action))
    for technician, org, action in cases[:200]:  # warm up: connection, prepared statements
        grant_allows(technician=technician, organization=org, action=action)
    timings = []
    allowed = 0
    with CaptureQueriesContext(connection) as queries:
        for technician, org, action in cases:
            began = time.perf_counter()
            allowed += grant_allows(technician=technician, organization=org, action=action)
            timings.append(time.perf_counter() - began)
    per_check = len(queries) / len(cases)
    technician, org, _ = cases[0]
    plan = granted_actions(technician, org, False, None).explain(analyze=True)
    print(f"  {allowed} of {len(cases)} checks allowed")
    return timings, per_check, plan


def watch_mirror(deadline: float) -> dict[tuple[int, int], float]:
    """When each (technician, organisation) pair's last jit_* permission disappeared, seen
    from outside by polling guardian's table every 50 ms."""
    from django.utils import timezone
    from guardian.models import UserObjectPermission

    from accounts.models import Organization

    org_pks = [str(pk) for pk in Organization.objects.filter(slug__in=ORG_SLUGS).values_list("pk", flat=True)]
    rows = UserObjectPermission.objects.filter(object_pk__in=org_pks, permission__codename__startswith="jit_")
    held = set(rows.values_list("user_id", "object_pk"))
    gone: dict[tuple[int, int], float] = {}
    while held and time.monotonic() < deadline:
        time.sleep(0.05)
        now = timezone.now().timestamp()
        current = set(rows.values_list("user_id", "object_pk"))
        for pair in held - current:
            gone[(pair[0], int(pair[1]))] = now
        held = current
    return gone


def summary(values: list[float], unit: float = 1000, suffix: str = "ms") -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * unit

    return (
        f"p50 {at(0.50):8.1f}  p90 {at(0.90):8.1f}  p99 {at(0.99):8.1f}  max {ordered[-1] * unit:8.1f} {suffix}"
        f"  (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grants", type=int, default=1000)
    parser.add_argument("--technicians", type=int, default=500, help="spread over two organisations (default 500)")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which expiries fall (default 60)")
    parser.add_argument("--lead", type=float, default=75.0, help="seconds from start to the first expiry")
    parser.add_argument("--checks", type=int, default=5000, help="authorization checks timed (default 5000)")
    parser.add_argument("--history", type=int, default=100_000, help="ended grants kept from the past year")
    parser.add_argument("--celery-concurrency", type=int, default=2, help="worker threads (default 2)")
    args = parser.parse_args()

    env = configure()
    from django.db import connection

    from access.models import Grant

    request_ids = seed(args.grants, args.technicians, args.history)
    connection.close()
    log = Path(env["PORTAL_VAR_DIR"]) / "celery-expiry.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = start_worker(env, args.celery_concurrency, log)
    try:
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
        )
        print(
            f"{args.grants} grants, expiries spread over {args.spread:.0f} s; one Celery worker "
            f"(concurrency {args.celery_concurrency}), no beat; PostgreSQL and Redis on this machine"
        )
        activation, until_first = activate_all(request_ids, lead=args.lead, spread=args.spread)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would after these inserts
        print(f"\nactivation (grant_activate, mirror applied, expiry task queued): {summary(activation)}")
        print(f"authorization check (grant_allows), {args.checks} checks, {until_first:.0f} s before the first expiry:")
        timings, per_check, plan = time_checks(request_ids, args.checks)
        print(f"  time per check: {summary(timings, unit=1e6, suffix='us')}")
        print(f"  queries per check: {per_check:.2f}")
        print("  plan (EXPLAIN ANALYZE of the check's query):")
        print("    " + plan.replace("\n", "\n    "))

        grants = Grant.objects.filter(request_id__in=request_ids)
        last_expiry = max(grants.values_list("expires_at", flat=True))
        deadline = time.monotonic() + (last_expiry.timestamp() - time.time()) + 60
        gone = watch_mirror(deadline)
        rows = list(grants.values_list("technician_id", "organization_id", "expires_at", "cleanup_lag"))
        recorded = [lag.total_seconds() for *_, lag in rows if lag is not None]
        observed = [gone[(t, o)] - e.timestamp() for t, o, e, _ in rows if (t, o) in gone]
        print("\nrevocation lag, expires_at to guardian permissions removed:")
        print(f"  recorded by the worker (Grant.cleanup_lag): {summary(recorded)}")
        print(f"  observed from outside (50 ms polling):      {summary(observed)}")
        missing = len(rows) - len(recorded)
        early = sum(1 for value in observed if value < 0)
        by_second = defaultdict(int)
        for value in recorded:
            by_second[min(int(value), 5)] += 1
        print(f"  not cleaned within 60 s of the last expiry: {missing}; removed before expires_at: {early}")
        print("  recorded lag histogram: " + ", ".join(f"{k}-{k + 1} s: {v}" for k, v in sorted(by_second.items())))
    finally:
        stop_worker(worker)


if __name__ == "__main__":
    main()
