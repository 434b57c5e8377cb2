"""Person search on PostgreSQL: 100,000 people in two organisations, timed per query kind.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_search \\
        .venv/bin/python -m bench.person_search [--people 100000] [--runs 60] [--http-runs 25] [--rebuild]

Creates and migrates the database if needed and loads the people once (again with
--rebuild). A technician assigned to one organisation, then one assigned to both, run
``accounts.selectors.person_search`` for a mix of realistic queries (``--runs`` per
kind, after a warm-up); the first also loads ``/people/?q=`` through the Django test
client (``--http-runs`` per kind). Prints p50/p95/p99/max in milliseconds and EXPLAIN
ANALYZE of typical queries. Numbers only: nothing here asserts a time. The method and
results are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import unicodedata
from collections import Counter
from collections.abc import Callable

from bench._setup import setup_django

ORGS = (("Bench Alpha", "bench-alpha"), ("Bench Beta", "bench-beta"))
TECHNICIAN_EMAIL = "bench-technician@msp.example"
TWO_ORG_TECHNICIAN_EMAIL = "bench-technician-2@msp.example"
BATCH = 5_000
SEED = 20_250_101
AREA_CODES = ("202", "212", "213", "305", "312", "415", "503", "617", "702", "713", "206", "404")
LOCALES = {"en_US": 5, "en_GB": 2, "es_ES": 1, "de_DE": 1, "fr_FR": 1, "it_IT": 1, "nl_NL": 1, "pl_PL": 1}
DEPARTMENTS = ("Finance", "Sales", "Engineering", "Support", "Legal", "HR", "Operations", "Marketing")


def ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum() or c == "-")


def load_people(total: int, *, rebuild: bool) -> None:
    from faker import Faker

    from accounts.models import Organization, Person
    from accounts.services import organization_create

    orgs = []
    for name, slug in ORGS:
        org = Organization.objects.filter(slug=slug).first() or organization_create(actor=None, name=name, slug=slug)
        orgs.append(org)
    people = Person.objects.filter(organization__in=orgs)
    if not rebuild and people.count() == total:
        print(f"reusing {total:,} people")
        return
    people.delete()
    # Several locales and some double-barrelled surnames give the long tail of rare names
    # a real directory has; a single locale repeats a thousand surnames.
    fake = Faker(LOCALES)
    fake.seed_instance(SEED)
    rng = random.Random(SEED)
    started = time.perf_counter()
    batch: list[Person] = []
    for n in range(total):
        org = orgs[n % len(orgs)]
        first, last = fake.first_name(), fake.last_name()
        if rng.random() < 0.1:
            last = f"{last}-{fake.last_name()}"
        person = Person(
            organization=org,
            employee_id=f"{org.slug[6].upper()}{n:07d}",
            full_name=f"{first} {last}",
            email=f"{ascii_word(first)}.{ascii_word(last)}.{n}@{org.slug}.example",
            phone=f"+1{rng.choice(AREA_CODES)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}",
            department=rng.choice(DEPARTMENTS),
        )
        person.search_text = person.build_search_text()  # bulk_create skips save()
        batch.append(person)
        if len(batch) == BATCH:
            Person.objects.bulk_create(batch)
            batch = []
    Person.objects.bulk_create(batch)
    from django.db import connection

    with connection.cursor() as cursor:
        # What autovacuum does soon after a bulk load; it also empties the trigram index's
        # pending list, which every search reads until then.
        cursor.execute("VACUUM ANALYZE accounts_person")
    print(f"loaded {total:,} people in {time.perf_counter() - started:.1f} s")


def bench_technician(email: str, slugs: list[str]):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    from accounts.models import Organization, User
    from accounts.selectors import organization_list_for_user
    from accounts.services import organization_assign_staff, user_create

    user = User.objects.filter(email=email).first() or user_create(actor=None, email=email)
    assigned = set(organization_list_for_user(user=user))
    for organization in Organization.objects.filter(slug__in=slugs):
        if organization not in assigned:
            organization_assign_staff(actor=None, organization=organization, user=user)
    if not Authenticator.objects.filter(user=user).exists():
        TOTP.activate(user, generate_totp_secret())  # the portal lets no one in without MFA
    return user


def query_mix(organization, rng: random.Random, per_kind: int) -> dict[str, list[str]]:
    """Queries a technician types, drawn from the organisation the technician works on."""
    from accounts.models import Person

    rows = list(
        Person.objects.filter(organization=organization).values_list("full_name", "email", "employee_id", "phone")
    )
    sample = [rows[i] for i in rng.sample(range(len(rows)), per_kind)]
    first_names = Counter(r[0].split()[0].lower() for r in rows)
    last_names = Counter(r[0].split()[-1].lower() for r in rows)
    common = [name for name, _ in first_names.most_common(40)]
    rare = [name for name, count in last_names.items() if count <= 3 and len(name) >= 4]

    def national(phone: str) -> str:
        digits = phone[2:]
        return rng.choice([f"({digits[:3]}) {digits[3:6]}-{digits[6:]}", f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"])

    def typo() -> str:
        return "".join(rng.choice("qxzjvk") for _ in range(5))

    return {
        "name, 2 chars": [rng.choice(common)[:2] for _ in range(per_kind)],
        "name, common fragment": [rng.choice(common)[: rng.randint(3, 5)] for _ in range(per_kind)],
        "name, rare surname": [rng.choice(rare) for _ in range(per_kind)],
        "full name": [r[0].lower() for r in sample],
        "full email": [r[1] for r in sample],
        "employee id": [r[2] for r in sample],
        "phone, national format": [national(r[3]) for r in sample],
        "no match": [typo() for _ in range(per_kind)],
    }


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return f"{cuts[49]:8.2f} {cuts[94]:8.2f} {cuts[98]:8.2f} {max(samples):8.2f}"


def time_mix(title: str, mix: dict[str, list[str]], run: Callable[[str], object]) -> list[float]:
    """Runs the kinds interleaved (so caches and autovacuum hit every kind alike)."""
    timings: dict[str, list[float]] = {kind: [] for kind in mix}
    order = [(kind, q) for kind, queries in mix.items() for q in queries]
    random.Random(SEED).shuffle(order)
    for kind, query in order:
        started = time.perf_counter()
        run(query)
        timings[kind].append((time.perf_counter() - started) * 1000)
    everything = [t for ts in timings.values() for t in ts]
    print(f"\n{title}: {len(everything)} runs")
    print(f"{'query kind':<26}{'runs':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  (ms)")
    for kind, ts in timings.items():
        print(f"{kind:<26}{len(ts):>6} {percentiles(ts)}")
    print(f"{'overall':<26}{len(everything):>6} {percentiles(everything)}")
    return everything


def explain(label: str, user, query: str) -> None:
    """EXPLAIN ANALYZE of the main query person_search runs (the organisation ids
    come from a small query before it)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.selectors import person_search

    with CaptureQueriesContext(connection) as captured:
        person_search(user=user, query=query)
    sql = captured.captured_queries[-1]["sql"]
    print(f"\nEXPLAIN ANALYZE, {label}, query {query!r}:")
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        print("\n".join(row[0] for row in cursor.fetchall()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=60, help="timed searches per query kind (default 60)")
    parser.add_argument("--http-runs", type=int, default=25, help="timed page loads per query kind; 0 skips")
    parser.add_argument("--rebuild", action="store_true", help="reload the people even if the count matches")
    args = parser.parse_args()
    setup_django()

    from django.db import connection
    from django.test import Client

    from accounts.models import Organization
    from accounts.selectors import person_search

    load_people(args.people, rebuild=args.rebuild)
    user = bench_technician(TECHNICIAN_EMAIL, [ORGS[0][1]])
    both = bench_technician(TWO_ORG_TECHNICIAN_EMAIL, [slug for _, slug in ORGS])
    alpha = Organization.objects.get(slug=ORGS[0][1])
    rng = random.Random(SEED)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        print(f"PostgreSQL {cursor.fetchone()[0]}, {args.people:,} people in {len(ORGS)} organisations")

    warm_up = query_mix(alpha, rng, 5)
    for queries in warm_up.values():
        for q in queries:
            person_search(user=user, query=q)
            person_search(user=both, query=q)
    mix = query_mix(alpha, rng, args.runs)
    time_mix("person_search, technician on one organisation", mix, lambda q: person_search(user=user, query=q))
    time_mix("person_search, technician on both organisations", mix, lambda q: person_search(user=both, query=q))

    if args.http_runs:
        client = Client()
        client.force_login(user)

        def get_page(q: str) -> None:
            response = client.get("/people/", {"q": q})
            assert response.status_code == 200, response.status_code

        get_page("warm")
        http_mix = {kind: queries[: args.http_runs] for kind, queries in query_mix(alpha, rng, args.runs).items()}
        time_mix(
            "GET /people/?q=, one organisation, Django test client (middleware, session, template)", http_mix, get_page
        )

    explain("technician on one organisation", user, mix["name, common fragment"][0])
    explain("technician on one organisation", user, mix["full email"][0])
    explain("technician on both organisations", both, mix["name, 2 chars"][0])


if __name__ == "__main__":
    main()
