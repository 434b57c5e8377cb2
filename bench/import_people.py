"""Benchmark the directory import: 100,000 people with managers, imported, re-imported, then changed.

Runs against whatever DATABASE_URL is set (SQLite under PORTAL_VAR_DIR when unset), in
production mode with the test credentials of config.settings_test (DEBUG off, so no
query logging). It migrates the database, imports into a fresh organisation, and
deletes that organisation's people afterwards unless --keep is given.

    PORTAL_VAR_DIR=/tmp/h-import-bench .venv/bin/python bench/import_people.py
    PORTAL_VAR_DIR=/tmp/h-import-bench DATABASE_URL=postgres://postgres@127.0.0.1:5432/himport_bench \\
        .venv/bin/python bench/import_people.py

Prints numbers only; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")

import django  # noqa: E402

HEADER = "employee_id,full_name,email,phone,department,manager_employee_id,privileged"
AREA_CODES = (201, 202, 212, 213, 305, 312, 415, 503, 617, 646, 702, 718, 773, 808, 917)
DEPARTMENTS = ("Finance", "IT", "Sales", "Operations", "Legal", "HR", "Support", "Engineering")
FIRST = ("Ada", "Bob", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lea", "Max", "Noa", "Oli")
LAST = ("Smith", "Jones", "Brown", "Okafor", "Nguyen", "García", "Müller", "Rossi", "Kowalski", "Tanaka")


def people_csv(count: int, *, seed: int = 42, changed_phones: int = 0) -> str:
    """A deterministic file: a management tree ten wide, rows shuffled so many reports come
    before their managers, mixed phone formats, some empty emails and phones."""
    rng = random.Random(seed)
    order = list(range(count))
    rng.shuffle(order)
    lines = [HEADER]
    for i in order:
        manager = f"E{(i - 1) // 10:06d}" if i else ""
        lines.append(
            ",".join(
                (
                    f"E{i:06d}",
                    f'"{FIRST[i % len(FIRST)]} {LAST[(i // 15) % len(LAST)]} {i}"',
                    "" if i % 37 == 0 else f"person{i}@bench.example",
                    "" if i % 53 == 0 else _phone(i, changed=i < changed_phones),
                    DEPARTMENTS[i % len(DEPARTMENTS)],
                    manager,
                    "yes" if i % 50 == 0 else "no",
                )
            )
        )
    return "\n".join(lines) + "\n"


def _phone(i: int, *, changed: bool) -> str:
    if i % 20 == 0:
        return f"+44 20 7946 {i % 10000:04d}"
    area = AREA_CODES[i % len(AREA_CODES)]
    exchange = 200 + (i // 10000) % 700 + (1 if changed else 0)
    if exchange % 100 == 11:  # N11 exchanges are not assignable
        exchange += 1
    return f"({area}) {exchange}-{i % 10000:04d}" if i % 2 else f"{area}{exchange}{i % 10000:04d}"


def timed(label: str, rows: int, run) -> None:
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    assert result.ok, result.errors[:5]
    counts = ", ".join(f"{k}={v}" for k, v in result.counts().items() if k != "rows")
    print(f"{label:<28} {seconds:7.2f} s  {rows / seconds:9,.0f} rows/s  ({counts})", flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the imported people")
    args = parser.parse_args()
    django.setup()

    from django.core.management import call_command
    from django.db import connection

    from accounts.imports import people_import
    from accounts.models import Organization, Person

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    print(f"cpu: {os.cpu_count()} x {cpu_model()}; python {platform.python_version()}; django {django.__version__}")
    organization = Organization.objects.create(name=f"Bench {time.time_ns()}", slug=f"bench-{time.time_ns()}")
    first = people_csv(args.rows)
    changed = people_csv(args.rows, changed_phones=args.rows // 20)
    print(f"file: {args.rows:,} rows, {len(first.encode()) / 1e6:.1f} MB")

    def run(text: str, *, dry_run: bool = False):
        return lambda: people_import(actor=None, organization=organization, csv_text=text, dry_run=dry_run)

    try:
        timed("dry run (empty directory)", args.rows, run(first, dry_run=True))
        timed("import (all new)", args.rows, run(first))
        timed("re-import (no change)", args.rows, run(first))
        timed(f"import ({args.rows // 20:,} phones changed)", args.rows, run(changed))
        assert Person.objects.filter(organization=organization).count() == args.rows
    finally:
        if not args.keep:
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM accounts_person WHERE organization_id = %s", [organization.pk])


if __name__ == "__main__":
    main()
