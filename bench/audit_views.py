"""The auditor's side of the security event log on PostgreSQL: the event list (first page,
deep pages, filters, free-text search) and the CSV / JSON-lines export over 1,000,000
events, beside django-auditlog's stock admin change list over 1,000,000 LogEntry rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_audit_views \\
        .venv/bin/python -m bench.audit_views [--events 1000000] [--runs 40] [--rebuild]

Creates and migrates the database if needed and loads the rows once (again with
--rebuild): a year of a helpdesk's events in twelve client organisations of very different
sizes (verification flows, actions, grants, sign-ins, directory changes), written with COPY
already sealed (each with its chain link; their hashes are not a valid chain, which nothing here
checks), then the same number of auditlog LogEntry rows. Pages are loaded through Django's
test client as a signed-in superuser and as an auditor of three organisations, so the
timings include middleware, scoping, the selector and the template, but no network. Each
export runs in a fresh process that streams the whole response and reports rows per second
and its peak resident memory (``VmHWM``). Prints p50/p95/p99/max in milliseconds.
Numbers only: nothing here asserts a time. Method and results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench._audit_data import (
    AUDITED,
    SEED,
    SPAN,
    START,
    load_events,
    load_logentries,
    seed_directory,
)
from bench._setup import setup_django

ROOT = Path(__file__).resolve().parent.parent


# --- Timing ---------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return f"{cuts[49]:9.1f} {cuts[94]:9.1f} {cuts[98]:9.1f} {max(samples):9.1f}"


def time_cases(title: str, client, cases: dict[str, list[str]], runs: int) -> None:
    """Loads each case's URLs ``runs`` times, the cases interleaved in a shuffled order."""
    rng = random.Random(SEED)
    order = [(name, urls[i % len(urls)]) for name, urls in cases.items() for i in range(runs)]
    for urls in cases.values():  # warm-up: one of each
        client.get(urls[0])
    rng.shuffle(order)
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for name, url in order:
        started = time.perf_counter()
        response = client.get(url)
        timings[name].append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{name}: {url} answered {response.status_code}")
    print(f"\n{title}\n{'case':<44} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}  (ms, {runs} runs)")
    for name, samples in timings.items():
        print(f"{name:<44} {percentiles(samples)}")


def deep_cursors(events, fractions=(0.25, 0.5, 0.75, 0.95, 0.999)) -> list[str]:
    """Cursors part-way down a list (found with OFFSET here, once, outside the timing)."""
    from audit.selectors import Cursor

    total = events.count()
    return [str(Cursor.of(events[int(total * f)])) for f in fractions]


def list_cases(scope_user, *, orgs, techs) -> dict[str, list[str]]:
    from urllib.parse import urlencode

    from django.db.models import Count

    from accounts.models import Person
    from audit.models import SecurityEvent
    from audit.selectors import EventFilter, audit_scope_for_user, security_event_list

    scope = audit_scope_for_user(user=scope_user)
    visible = [o for o in orgs if scope.covers(o.pk)]
    visible_ids = [o.pk for o in visible]
    in_scope = (
        SecurityEvent.objects.all()
        if scope.everything
        else SecurityEvent.objects.filter(organization_id__in=visible_ids)
    )
    busiest = (
        in_scope.filter(actor_id__in=[t.pk for t in techs])
        .values("actor_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .first()
    )
    tech = next(t for t in techs if t.pk == busiest["actor_id"])
    rng = random.Random(SEED + 1)
    people = list(Person.objects.filter(organization__in=visible).values_list("pk", "full_name")[:5000])
    sample = [rng.choice(people) for _ in range(10)]
    recent = in_scope.filter(event_type="verification.request_created").order_by("-id")
    tickets = [d["ticket"] for d in recent.values_list("details", flat=True)[200:210]]
    request_ids = list(in_scope.exclude(request_id="").order_by("-id").values_list("request_id", flat=True)[1000:1010])
    everything = security_event_list(scope=scope, event_filter=EventFilter())
    actor = security_event_list(scope=scope, event_filter=EventFilter(actor_id=tech.pk))

    def urls(params_list):
        return [f"/audit/?{urlencode(p)}" for p in params_list]

    month = (START + timedelta(days=200)).date()
    return {
        "first page": urls([{}]),
        "deep page (25% to 99.9% down)": urls([{"before": c} for c in deep_cursors(everything)]),
        "newer page from deep": urls([{"after": c} for c in deep_cursors(everything)]),
        "organisation": urls([{"organization": o.pk} for o in visible[:5]]),
        "event type, common": urls([{"event_type": "verification.challenge_sent"}]),
        "event type, rare (fraud reported)": urls([{"event_type": "verification.fraud_reported"}]),
        "event group (access.*)": urls([{"event_type": "access.*"}]),
        "actor (busiest technician)": urls([{"actor": tech.pk}]),
        "actor, deep page": urls([{"actor": tech.pk, "before": c} for c in deep_cursors(actor)]),
        "one day": urls([{"since": month.isoformat(), "until": month.isoformat()}]),
        "person timeline": [f"/audit/people/{pk}/" for pk, _ in sample],
        "technician timeline": [f"/audit/staff/{tech.pk}/"],
        "text: person's name": urls([{"q": name.lower()} for _, name in sample]),
        "text: technician's name": urls([{"q": tech.full_name.lower()}]),
        "text: ticket": urls([{"q": t} for t in tickets]),
        "text: request id": urls([{"q": r[:12]} for r in request_ids]),
        "text: no match": urls([{"q": "qxzjvw"}]),
    }


def auditlog_cases() -> dict[str, list[str]]:
    """The stock LogEntry admin's change list: first page, last page and a search. Its
    search fields name ``actor__first_name`` and ``actor__last_name``, which this portal's
    User does not have (the stock search answers 500 here), so the search runs on a copy of
    that admin on its own site with ``actor__full_name`` in their place, nothing else changed."""
    from math import ceil

    from auditlog.admin import LogEntryAdmin
    from auditlog.models import LogEntry
    from django.conf import settings
    from django.contrib import admin
    from django.urls import clear_url_caches, include, path

    class PortalUserLogEntryAdmin(LogEntryAdmin):
        search_fields = [
            "timestamp",
            "object_repr",
            "changes",
            "actor__full_name",
            f"actor__{LogEntry._meta.get_field('actor').related_model.USERNAME_FIELD}",
        ]

    site = admin.AdminSite(name="bench_auditlog")
    site.register(LogEntry, PortalUserLogEntryAdmin)
    global urlpatterns
    urlpatterns = [path("bench-admin/", site.urls), path("", include("config.urls"))]
    settings.ROOT_URLCONF = __name__
    clear_url_caches()
    last_page = ceil(LogEntry.objects.count() / LogEntryAdmin.list_per_page)  # ?p= counts from 1
    email = LogEntry.objects.exclude(actor_email=None).values_list("actor_email", flat=True).first()
    return {
        "auditlog admin: first page": ["/admin/auditlog/logentry/"],
        "auditlog admin: last page": [f"/admin/auditlog/logentry/?p={last_page}"],
        "auditlog admin: search by email": [f"/bench-admin/auditlog/logentry/?q={email}"],
    }


urlpatterns: list = []  # set by auditlog_cases (a URLconf with the copied admin site)


def signed_in_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


# --- Export, in a process of its own ------------------------------------------------------


def peak_rss_kb() -> int:
    """This process's peak resident memory. Not ``ru_maxrss``: Linux carries that over
    from the parent through fork and exec, so a child would report the parent's size."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def export_child(fmt: str, email: str, query: str, trace: bool) -> None:
    """Runs in a fresh process: stream one export to nowhere, report rows/s and memory."""
    import tracemalloc

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    if fmt == "plain":
        plain_export_child()
        return
    from accounts.models import User

    client = signed_in_client(User.objects.get(email=email))
    client.get("/audit/")  # warm the process: imports, templates, connection
    before = peak_rss_kb()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    response = client.get(f"/audit/export.{fmt}?{query}")
    size = lines = 0
    for piece in response.streaming_content:
        size += len(piece)
        lines += piece.count(b"\n")
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    _report_export(lines - 1 if fmt == "csv" else lines, seconds, size, before, traced_peak=peak)


def _report_export(rows: int, seconds: float, size: int, rss_before_kb: int, *, traced_peak: int | None) -> None:
    """The child's one line for run_export."""
    numbers = {"rows": rows, "seconds": seconds, "bytes": size, "rss_before_kb": rss_before_kb}
    print(json.dumps({**numbers, "rss_peak_kb": peak_rss_kb(), "traced_peak": traced_peak}))


def plain_export_child() -> None:
    """The issue's yardstick for an export: a plain Django ``values_list().iterator()`` CSV
    export of every event (its own columns, through ``csv.writer``, to nowhere)."""
    import csv

    from audit.export import BASE_COLUMNS
    from audit.models import SecurityEvent

    class Nowhere:
        size = 0

        def write(self, text: str) -> None:
            self.size += len(text)

    sink = Nowhere()
    writer = csv.writer(sink)
    before = peak_rss_kb()
    started = time.perf_counter()
    rows = 0
    for row in SecurityEvent.objects.order_by("-created_at", "-id").values_list(*BASE_COLUMNS, "details").iterator():
        writer.writerow(row)
        rows += 1
    _report_export(rows, time.perf_counter() - started, sink.size, before, traced_peak=None)


def run_export(fmt: str, email: str, query: str = "", *, trace: bool = False) -> dict:
    args = [sys.executable, "-m", "bench.audit_views", "--export-child", fmt, "--as", email, "--query", query]
    if trace:
        args.append("--trace")
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=os.environ, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_exports(admin, auditor, org) -> None:
    print(
        f"\nexport (one process each, whole response streamed)\n{'case':<44} {'rows':>9} {'s':>6} {'rows/s':>9} "
        f"{'MB':>7} {'peak RSS MB':>12} {'growth MB':>10}"
    )
    cases = [
        ("CSV, everything (superuser)", "csv", admin.email, ""),
        ("JSON lines, everything (superuser)", "jsonl", admin.email, ""),
        ("CSV, one organisation (auditor)", "csv", auditor.email, f"organization={org.pk}"),
        ("CSV, verification.* (auditor)", "csv", auditor.email, "event_type=verification.*"),
        ("yardstick: plain values_list().iterator() CSV", "plain", admin.email, ""),
    ]
    for name, fmt, email, query in cases:
        r = run_export(fmt, email, query)
        growth = (r["rss_peak_kb"] - r["rss_before_kb"]) / 1024
        print(
            f"{name:<44} {r['rows']:>9,} {r['seconds']:>6.1f} {r['rows'] / r['seconds']:>9,.0f} "
            f"{r['bytes'] / 1e6:>7.0f} {r['rss_peak_kb'] / 1024:>12.0f} {growth:>10.1f}"
        )
    traced = run_export("csv", admin.email, "", trace=True)
    print(
        f"tracemalloc peak of the CSV export of everything: {traced['traced_peak'] / 1e6:.1f} MB "
        f"(a second run under tracemalloc: {traced['rows'] / traced['seconds']:,.0f} rows/s)"
    )


# --- Main -----------------------------------------------------------------------------------


def machine() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SHOW shared_buffers")
        buffers = cursor.fetchone()[0]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} CPUs ({cpu}), {version}, shared_buffers {buffers}, load average {os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--auditlog-runs", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--skip-auditlog", action="store_true")
    parser.add_argument("--load-only", action="store_true", help="load the rows, time nothing")
    parser.add_argument("--export-child", choices=("csv", "jsonl", "plain"))
    parser.add_argument("--as", dest="email")
    parser.add_argument("--query", default="")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    if args.export_child:
        export_child(args.export_child, args.email, args.query, args.trace)
        return
    setup_django()
    rng = random.Random(SEED)
    orgs, techs, auditor, admin = seed_directory(rng)
    load_events(args.events, rebuild=args.rebuild, orgs=orgs, techs=techs, rng=rng)
    if not args.skip_auditlog:
        load_logentries(args.events, rebuild=args.rebuild, techs=techs, rng=rng)
    if args.load_only:
        return
    print(machine())
    time_cases(
        "event list, superuser (every organisation)",
        signed_in_client(admin),
        list_cases(admin, orgs=orgs, techs=techs),
        args.runs,
    )
    time_cases(
        f"event list, auditor of {len(AUDITED)} organisations",
        signed_in_client(auditor),
        list_cases(auditor, orgs=orgs, techs=techs),
        args.runs,
    )
    if not args.skip_auditlog:
        admin_client = signed_in_client(admin)
        time_cases(
            "django-auditlog admin change list, superuser",
            admin_client,
            auditlog_cases(),
            args.auditlog_runs,
        )
    report = "/audit/report/?organization={}&since={}&until={}"
    end = (START + SPAN - timedelta(days=1)).date()
    time_cases(
        "compliance report, largest organisation (30% of the events), superuser",
        signed_in_client(admin),
        {
            "30 days": [report.format(orgs[0].pk, end - timedelta(days=29), end)],
            "366 days": [report.format(orgs[0].pk, end - timedelta(days=365), end)],
            "30 days, printable": [
                report.replace("/report/", "/report/print/").format(orgs[0].pk, end - timedelta(days=29), end)
            ],
        },
        max(3, args.runs // 8),
    )
    time_exports(admin, auditor, orgs[AUDITED[0]])


if __name__ == "__main__":
    main()
