"""Benchmark caller verification end to end: full round trips through the real stack.

Against PostgreSQL (DATABASE_URL) and Redis (REDIS_URL), it starts gunicorn, one Celery
worker and the fake Twilio API (tests/fakes/twilio_api.py, in this process), all in
production mode. Each round trip is what a technician and a caller do:

1. create a verification request (POST /people/<pk>/verify/),
2. send an SMS code (POST .../send/): the worker picks the task and calls "Twilio",
3. the caller reads the code from the text, the technician types it into the form the
   page got back from step 2 (POST .../code/, as htmx does) and the answer comes back
   with the status: verified.

Before each level it runs VACUUM ANALYZE, as autovacuum would on a maintained server.
It prints round trips per second and p50/p95/p99 of: request creation, creation of the
challenge to the Twilio API call (dispatch: from the challenge's created_at, stamped in the
send's transaction, to the fake API receiving the text; below it, the same from the moment
the driver sent the send's POST, which adds the time the POST queued in gunicorn and the
send's own work), answer to status visible; and the CPU time
gunicorn and the Celery worker spent per round trip, and beside it what PostgreSQL, Redis and
this driver spent and how busy the machine was. First it measures the machine's speed at that
moment with a bare Django page (bench/bare_django.py; the issue's own reference for this
machine kind is 600-850 requests per second) and prints it above the levels, so that runs on
machines of different speeds can be compared. Numbers only; nothing is asserted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_verification \\
    REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/verification.py

Use a Redis database number nothing else uses: the benchmark flushes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token"
CODE_RE = re.compile(r"code is (\d{6,8})")
SENDS_PER_TECHNICIAN = 400
CODE_FORM_RE = re.compile(r'action="(/verifications/\d+/challenges/\d+/code/)"')


def environment(*, port: int, twilio_url: str) -> dict[str, str]:
    from bench._setup import postgres_database_url

    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url.startswith("redis"):
        sys.exit("REDIS_URL must point at Redis, e.g. redis://127.0.0.1:6379/9")
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=postgres_database_url(),
        DEBUG="false",
        SECRET_KEY="bench-" + "k" * 60,
        AUDIT_HMAC_KEY="bench-audit-hmac-" + "h" * 40,
        AUDIT_SIGNING_KEY="YmVuY2gtb25seS1hdWRpdC1zaWduaW5nLWtleS0zMmI=",  # base64 of 32 bench-only bytes
        ALLOWED_HOSTS="127.0.0.1",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SECURE_SSL_REDIRECT="false",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_API_BASE_URL=twilio_url,
        EMAIL_URL="consolemail://",
        PORTAL_VAR_DIR=os.environ.get("PORTAL_VAR_DIR", "/tmp/portal-bench-verification"),
        LOG_LEVEL="WARNING",
        # A benchmark is one burst of sends: raise the send limits that protect real people
        # to their caps (each round trip still passes every limit's check).
        VERIFICATION_SEND_LIMIT_TECHNICIAN="500",
        VERIFICATION_SEND_LIMIT_GLOBAL_MINUTE="10000",
        VERIFICATION_SEND_LIMIT_GLOBAL_HOUR="100000",
        PYTHONUNBUFFERED="1",
    )
    return env


# --- Seeding (in this process, same database and cache as the servers) -----------------


@dataclass
class Seed:
    person_ids: list[int]
    phones: dict[int, str]  # person id -> phone
    sessions: list[tuple[str, str]]  # (session key, csrf secret) per technician


def seed(*, people: int, technicians: int) -> Seed:
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
    from django.core.cache import cache

    from accounts.models import Organization, Person, Role, User
    from accounts.services import organization_assign_staff
    from validation.models import SendRecord

    cache.clear()
    SendRecord.objects.all().delete()  # the send limits' ledger: earlier runs' sends count no more
    org = Organization.objects.filter(slug="bench").first() or Organization.objects.create(name="Bench", slug="bench")
    existing = org.people.count()
    Person.objects.bulk_create(
        [
            Person(
                organization=org,
                employee_id=f"B{i:07d}",
                full_name=f"Bench Person {i}",
                phone=f"+1202{i:07d}",
                search_text=f"bench person {i}",
            )
            for i in range(existing, people)
        ]
    )
    ids = list(org.people.order_by("pk").values_list("pk", "phone")[:people])
    from django.contrib.auth.models import Group

    group = Group.objects.get_or_create(name=Role.TECHNICIAN.value)[0]
    sessions = []
    for n in range(technicians):
        user = User.objects.filter(email=f"bench-tech-{n}@bench.example").first()
        if user is None:
            user = User.objects.create_user(f"bench-tech-{n}@bench.example", secrets.token_urlsafe(16))
            user.groups.add(group)
            organization_assign_staff(actor=None, organization=org, user=user)
            TOTP.activate(user, generate_totp_secret())
        sessions.append((signed_in_session(user), secrets.token_hex(16)))
    return Seed(person_ids=[pk for pk, _ in ids], phones=dict(ids), sessions=sessions)


def signed_in_session(user) -> str:
    """A session key for ``user``, signed in with MFA just now (in the cache, as the portal keeps them)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.cache import SessionStore
    from django.utils import timezone

    from accounts.middleware import LOGIN_AT_KEY

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session[LOGIN_AT_KEY] = timezone.now().isoformat()
    session.create()
    return session.session_key


# --- Processes and their CPU time ---------------------------------------------------------


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, alive now."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / tick


def named_cpu_seconds(name: str) -> float:
    """User + system CPU of every process whose command is ``name`` (all of this machine's
    PostgreSQL or Redis server processes: anything else using them is counted too), and of
    their children that have exited (a PostgreSQL backend whose connection closed during the
    level: its parent, the postmaster, has collected its CPU time)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
            if head.split("(", 1)[1] == name:
                fields = rest.split()
                total += sum(int(fields[n]) for n in (11, 12, 13, 14))  # utime, stime, cutime, cstime
        except (OSError, IndexError):
            continue
    return total / tick


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:8]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / tick, sum(values) / tick


def vacuum_analyze(url: str) -> None:
    """VACUUM ANALYZE the benchmark's database, as autovacuum keeps a production server's
    statistics and visibility maps up to date. Run before each level: with autovacuum off
    (as on this machine kind) the planner keeps the empty tables' statistics while the
    benchmark adds tens of thousands of rows, and picks plans no maintained server would
    (an answer's read of the approved methods scanned every approved challenge: 2-3 ms)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    time.sleep(1)  # its server process exits before the level's CPU is read


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_http(url: str, timeout: float = 30) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - 127.0.0.1 only
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within {timeout:.0f} s")


# --- The round trip -----------------------------------------------------------------------


@dataclass
class Timings:
    creation: list[float] = field(default_factory=list)
    dispatch: list[float] = field(default_factory=list)  # the send's POST to the Twilio call
    visible: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    texted_at: dict[int, float] = field(default_factory=dict)  # person id -> when Twilio got it (epoch)
    early_answers: int = 0  # answers posted before the worker had saved that the text was sent


class TwilioArrivals:
    """Wakes the round trip waiting for the text to a phone when the fake API receives it."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.waiting: dict[str, asyncio.Future] = {}
        self.lock = threading.Lock()

    def expect(self, phone: str) -> asyncio.Future:
        future = self.loop.create_future()
        with self.lock:
            self.waiting[phone] = future
        return future

    def received(self, recorded) -> None:  # called in the fake's thread
        arrived, epoch = time.perf_counter(), time.time()
        phone = recorded.value("To")
        with self.lock:
            future = self.waiting.pop(phone, None)
        if future is not None:
            self.loop.call_soon_threadsafe(_resolve, future, (arrived, epoch, recorded.value("Body")))


def _resolve(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str


class Http:
    """The technicians' browsers: one HTTP/1.0 request per connection, as gunicorn's sync
    workers serve them anyway (they close each connection after one response). Written out
    on asyncio's streams because the driver shares the two cores with the portal: with
    aiohttp this process spent about 1 ms more CPU per round trip (3.0-3.3 ms in all, now
    1.9-2.1), mostly opening connections, which the portal then could not use. The server
    sees the same requests either way."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    async def post(self, path: str, form: dict[str, str], headers: dict[str, str]) -> Response:
        body = urlencode(form).encode()
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            f"POST {path} HTTP/1.0\r\nHost: {self.host}:{self.port}\r\n{head}"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(request)
            raw = await reader.read()  # to the end: the server closes after the response
        finally:
            writer.close()
        top, _, content = raw.partition(b"\r\n\r\n")
        status_line, *lines = top.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines if ": " in line)
        return Response(int(status_line.split(" ", 2)[1]), fields, content.decode())


async def round_trip(http: Http, session: tuple[str, str], person_id: int, phone: str, arrivals, timings):
    session_key, csrf = session
    headers = {
        "Cookie": f"__Host-sessionid={session_key}; __Host-csrftoken={csrf}",
        "X-CSRFToken": csrf,
    }
    htmx = {**headers, "HX-Request": "true"}
    started = time.perf_counter()
    response = await http.post(
        f"/people/{person_id}/verify/", {"action": "other", "ticket_reference": f"BENCH-{person_id}"}, headers
    )
    location = response.headers.get("Location", "")
    if response.status != 302 or not location.startswith("/verifications/"):
        raise RuntimeError(f"create: HTTP {response.status} {location}")
    created = time.perf_counter()
    timings.creation.append(created - started)
    arrival = arrivals.expect(phone)
    sending = time.perf_counter()
    response = await http.post(f"{location}send/", {"method": "sms_code"}, htmx)
    if response.status != 200:
        raise RuntimeError(f"send: HTTP {response.status}")
    match = CODE_FORM_RE.search(response.text)  # the fragment the send returned: the code form is there
    if match is None:
        raise RuntimeError("send: no code form in the page")
    arrived, timings.texted_at[person_id], body = await asyncio.wait_for(arrival, timeout=30)
    timings.dispatch.append(arrived - sending)
    code = CODE_RE.search(body).group(1)
    answered = time.perf_counter()
    for _ in range(100):
        response = await http.post(match.group(1), {"code": code}, htmx)
        if "still being sent" not in response.text:  # Twilio has it; the worker is saving that it is sent
            break
        timings.early_answers += 1
        await asyncio.sleep(0.01)
    if "Verified until" not in response.text:
        raise RuntimeError(f"answer: HTTP {response.status}, not verified")
    timings.visible.append(time.perf_counter() - answered)


async def run_level(http: Http, seed_data: Seed, people: list[int], concurrency: int, arrivals) -> Timings:
    timings = Timings()
    queue = list(people)

    async def client() -> None:
        while queue:
            person_id = queue.pop()
            session = seed_data.sessions[len(queue) % len(seed_data.sessions)]  # in turn: see SENDS_PER_TECHNICIAN
            try:
                await round_trip(http, session, person_id, seed_data.phones[person_id], arrivals, timings)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                timings.failures.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return timings


def challenge_to_twilio(texted_at: dict[int, float], *, since: float) -> list[float]:
    """Seconds from each SMS challenge's creation (its ``created_at``, stamped in the send's
    transaction on this machine's clock) to the fake Twilio API receiving the text: the
    dispatch, after commit, through Redis and the worker. The send's POST waits in gunicorn's
    queue before that; the line below it in the output counts from the POST. ``since``: when
    the level began (epoch; earlier runs left challenges to the same people)."""
    from datetime import UTC, datetime

    from validation.models import Challenge

    created = Challenge.objects.filter(
        request__person_id__in=texted_at, method="sms_code", created_at__gte=datetime.fromtimestamp(since, tz=UTC)
    ).values_list("request__person_id", "created_at")
    return [texted_at[person_id] - at.timestamp() for person_id, at in created]


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {at(0.50):7.1f}  p95 {at(0.95):7.1f}  p99 {at(0.99):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts (default 1,8,32)")
    parser.add_argument("--rounds", type=int, default=600, help="round trips per concurrency level (default 600)")
    parser.add_argument(
        "--web-workers",
        type=int,
        default=(os.cpu_count() or 1) + 1,
        help="gunicorn worker processes (default: one more than the cores, as docs/deployment.md advises)",
    )
    parser.add_argument(
        "--web-threads",
        type=int,
        default=1,
        help="threads per gunicorn worker (default 1: sync workers, as docs/deployment.md runs them)",
    )
    parser.add_argument("--celery-concurrency", type=int, default=4, help="Celery worker threads (default 4)")
    parser.add_argument(
        "--celery-pool",
        default="threads",
        choices=["threads", "solo"],
        help="Celery pool (default threads, as config/settings.py runs it)",
    )
    parser.add_argument("--port", type=int, default=8911)
    parser.add_argument(
        "--no-yardstick", action="store_true", help="skip the bare Django page measured first (bench/bare_django.py)"
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    from tests.fakes.twilio_api import FakeTwilioApi

    loop = asyncio.new_event_loop()
    arrivals = TwilioArrivals(loop)
    # Keep-alive, as api.twilio.com: the worker's client reuses its connection between texts.
    api = FakeTwilioApi(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, on_request=arrivals.received, keep_alive=True
    ).start()
    env = environment(port=args.port, twilio_url=api.base_url)
    os.environ.update(env)
    from bench._setup import create_database_if_missing

    create_database_if_missing(env["DATABASE_URL"])
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    # Production mode serves hashed static files (WhiteNoise's manifest), as a deployment does.
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    total = sum(args.rounds for _ in levels) + args.web_workers * 2
    # Each technician sends at most SENDS_PER_TECHNICIAN texts in a run: under the per-technician
    # limit (500 an hour at its cap), whatever the rounds.
    seed_data = seed(people=total, technicians=max(*levels, -(-total // SENDS_PER_TECHNICIAN)))
    from django.db import connection

    connection.close()
    yardsticks = []
    if not args.no_yardstick:  # the machine's speed now, before the portal's servers start
        from bench.bare_django import measure

        # 1 and 4 workers, whatever the portal runs: the same two figures in every run and session.
        yardsticks = [(workers, measure(port=args.port + 1, workers=workers)) for workers in (1, 4)]

    logs = Path(env["PORTAL_VAR_DIR"])
    logs.mkdir(parents=True, exist_ok=True)
    venv_bin = Path(sys.executable).parent
    web = start_process(
        [
            str(venv_bin / "gunicorn"),
            "config.wsgi",
            f"--bind=127.0.0.1:{args.port}",
            f"--workers={args.web_workers}",
            f"--threads={args.web_threads}",
            "--worker-class=gthread" if args.web_threads > 1 else "--worker-class=sync",
            "--log-level=warning",
        ],
        env,
        logs / "gunicorn.log",
    )
    worker = start_process(
        [
            str(venv_bin / "celery"),
            "-A",
            "config",
            "worker",
            f"--concurrency={args.celery_concurrency}",
            f"--pool={args.celery_pool}",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-O",
            "fair",
        ],
        env,
        logs / "celery.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{args.port}/accounts/login/")
        http = Http("127.0.0.1", args.port)
        time.sleep(2)  # the worker connects to the broker
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}"
        )
        print(
            f"gunicorn {args.web_workers} workers x {args.web_threads} threads, Celery worker {args.celery_pool} "
            f"pool of {args.celery_concurrency}, PostgreSQL and Redis on this machine, fake Twilio API in the driver"
        )
        if yardsticks:
            from bench.bare_django import yardstick_line

            for workers, (rate, cpu_ms) in yardsticks:
                print(yardstick_line(rate, cpu_ms, workers=workers))
        people = list(seed_data.person_ids)
        # Warm up: connections, imports, the first request of each worker.
        asyncio.set_event_loop(loop)
        loop.run_until_complete(
            run_level(http, seed_data, people[: args.web_workers * 2], min(4, max(levels)), arrivals)
        )
        people = people[args.web_workers * 2 :]
        for concurrency in levels:
            batch, people = people[: args.rounds], people[args.rounds :]
            vacuum_analyze(env["DATABASE_URL"])
            web_cpu, worker_cpu = cpu_seconds(web.pid), cpu_seconds(worker.pid)
            others = (named_cpu_seconds("postgres"), named_cpu_seconds("redis-server"), time.process_time())
            busy = machine_busy_seconds()
            began, began_epoch = time.perf_counter(), time.time()
            timings = loop.run_until_complete(run_level(http, seed_data, batch, concurrency, arrivals))
            elapsed = time.perf_counter() - began
            done = len(timings.visible)
            web_used = (cpu_seconds(web.pid) - web_cpu) * 1000 / max(done, 1)
            worker_used = (cpu_seconds(worker.pid) - worker_cpu) * 1000 / max(done, 1)
            now_others = (named_cpu_seconds("postgres"), named_cpu_seconds("redis-server"), time.process_time())
            postgres, redis, driver = ((b - a) * 1000 / max(done, 1) for a, b in zip(others, now_others, strict=True))
            busy_now = machine_busy_seconds()
            machine = (busy_now[0] - busy[0]) / max(busy_now[1] - busy[1], 1e-9)
            print(
                f"\nconcurrency {concurrency}: {done} round trips in {elapsed:.1f} s = {done / elapsed:.1f} per second"
            )
            print(f"  request creation          {percentiles(timings.creation)}")
            dispatch = challenge_to_twilio(timings.texted_at, since=began_epoch)
            print(f"  creation to Twilio call   {percentiles(dispatch)}")
            print(f"  (send's POST to it        {percentiles(timings.dispatch)}, the send's queueing in gunicorn too)")
            print(f"  answer to status visible  {percentiles(timings.visible)}")
            print(
                f"  answers posted again because the text was still being saved as sent: "
                f"{timings.early_answers / max(done, 1):.2f} per round trip (their CPU is in the figures below)"
            )
            print(
                f"  CPU per round trip: web {web_used:.1f} ms + worker {worker_used:.1f} ms = "
                f"{web_used + worker_used:.1f} ms"
            )
            print(
                f"  and elsewhere: PostgreSQL {postgres:.1f} ms, Redis {redis:.1f} ms, this driver (clients and "
                f"fake Twilio) {driver:.1f} ms; the machine's CPUs were {machine:.0%} busy"
            )
            if timings.failures:
                print(f"  FAILED round trips: {len(timings.failures)}, first: {timings.failures[0]}")
    finally:
        stop_process(web)
        stop_process(worker)
        api.stop()
        loop.close()


if __name__ == "__main__":
    main()
