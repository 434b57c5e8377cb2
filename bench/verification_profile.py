"""Where a verification round trip's CPU goes, in one process: the same three requests as
bench/verification.py (create, send an SMS code, type it in) through Django's test client
in production mode, with the worker's send (``services.challenge_dispatch``) called in
between, against PostgreSQL, Redis and the fake Twilio API. For finding what to remove;
bench/verification.py is the measurement.

Prints, per step and per round trip: CPU milliseconds, queries, and Python function calls
(a count that does not move with the machine's load, unlike the milliseconds).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_verification \\
    REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python -m bench.verification_profile

--queries prints the last round trip's SQL; --profile N prints the N costliest functions
(cumulative, cProfile). Run bench/verification.py once first: it creates the database, the
organisation and the technicians this uses. It empties the send-limit ledger and the cache
(REDIS_URL's database) before it starts, and migrates the database first.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.verification import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    CODE_FORM_RE,
    CODE_RE,
    environment,
    signed_in_session,
)

STEPS = ("create", "send", "worker", "answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60, help="measured round trips (default 60, after 10 warm-up)")
    parser.add_argument("--queries", action="store_true", help="print the SQL of the last round trip")
    parser.add_argument(
        "--calls", action="store_true", help="count Python function calls (cProfile; the CPU times then include it)"
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="with --calls: the N costliest functions")
    parser.add_argument("--step", choices=STEPS, help="with --profile: only this step's functions")
    parser.add_argument("--dump", metavar="FILE", help="with --calls: write the (step's) profile to FILE for pstats")
    args = parser.parse_args()

    from tests.fakes.twilio_api import FakeTwilioApi

    texts: dict[str, str] = {}
    api = FakeTwilioApi(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        on_request=lambda recorded: texts.__setitem__(recorded.value("To"), recorded.value("Body")),
    ).start()
    os.environ.update(environment(port=8911, twilio_url=api.base_url), ALLOWED_HOSTS="testserver")
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=os.environ, check=True)
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    import validation.tasks
    from accounts.models import Organization, Person, User
    from validation import services
    from validation.models import SendRecord

    queued: list[int] = []
    validation.tasks.challenge_send.delay = queued.append  # the worker's part is timed on its own
    SendRecord.objects.all().delete()
    cache.clear()
    organization = Organization.objects.get(slug="bench")
    technician = User.objects.get(email="bench-tech-0@bench.example")
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = signed_in_session(technician)

    def post(path: str, form: dict[str, str], **headers):
        """A form post as a browser and bench/verification.py send it (the test client's
        default, multipart, costs the portal more to parse)."""
        return client.post(path, urlencode(form), "application/x-www-form-urlencoded", **headers)

    warm = 10
    people = [
        Person.objects.create(
            organization=organization,
            employee_id=f"P{secrets.token_hex(5)}",
            full_name=f"Profile Person {n}",
            phone=f"+1303{secrets.randbelow(10**7):07d}",
            search_text="profile person",
        )
        for n in range(warm + args.rounds)
    ]
    cpu = dict.fromkeys(STEPS, 0.0)
    queries = dict.fromkeys(STEPS, 0)
    calls = dict.fromkeys(STEPS, 0)
    counting = args.calls or args.profile > 0
    combined: pstats.Stats | None = None
    last_sql: list[tuple[str, str]] = []

    def step(name: str, n: int, work):
        nonlocal combined
        measured = n >= warm
        counter = cProfile.Profile(time.process_time)
        started = time.process_time()
        statements: list[str] = []

        def counted(execute, sql, params, many, context):
            statements.append(sql)  # counted without Django's debug cursor, which formats every query
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counted):
            if measured and counting:
                counter.enable()
            result = work()
            counter.disable()
        if measured:
            cpu[name] += time.process_time() - started
            queries[name] += len(statements)
            if counting:
                stats = pstats.Stats(counter)
                calls[name] += stats.total_calls
                if args.step in (None, name):
                    combined = stats if combined is None else combined.add(stats)
        if n == len(people) - 1:
            last_sql.extend((name, sql) for sql in statements)
        return result

    for n, person in enumerate(people):
        create = {"action": "other", "ticket_reference": f"PROF-{person.pk}"}
        response = step("create", n, partial(post, f"/people/{person.pk}/verify/", create))
        if response.status_code != 302:
            sys.exit(f"create: HTTP {response.status_code}")
        send = partial(post, f"{response['Location']}send/", {"method": "sms_code"}, HTTP_HX_REQUEST="true")
        form = CODE_FORM_RE.search(step("send", n, send).content.decode())
        if form is None:
            sys.exit("send: no code form in the fragment (a send limit? run with a fresh REDIS_URL database)")
        step("worker", n, partial(services.challenge_dispatch, challenge_id=queued.pop()))
        answer = {"code": CODE_RE.search(texts[person.phone]).group(1)}
        response = step("answer", n, partial(post, form.group(1), answer, HTTP_HX_REQUEST="true"))
        if "Verified until" not in response.content.decode():
            sys.exit("answer: not verified")
    api.stop()

    rounds = args.rounds
    print(f"{rounds} round trips (after {warm} warm-up), per round trip:")
    print(f"{'step':8} {'CPU ms':>8} {'queries':>8} {'calls':>8}")
    for name in (*STEPS, "total"):
        used = sum(cpu.values()) if name == "total" else cpu[name]
        asked = sum(queries.values()) if name == "total" else queries[name]
        called = sum(calls.values()) if name == "total" else calls[name]
        count = f"{called // rounds:8d}" if counting else f"{'-':>8}"
        print(f"{name:8} {used * 1000 / rounds:8.1f} {asked / rounds:8.1f} {count}")
    if args.queries:
        for name, sql in last_sql:
            print(f"[{name}] {' '.join(sql.split())[:200]}")
    if combined is not None and args.dump:
        combined.dump_stats(args.dump)
    if combined is not None and args.profile:
        out = io.StringIO()
        combined.stream = out
        combined.sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())


if __name__ == "__main__":
    main()
