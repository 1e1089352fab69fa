"""Review latency under load: M simulated annotators against a PostgreSQL project of N completions.

    .venv/bin/python bench/review_latency.py [--completions 1000000] [--prompts-per 4] [--annotators 20]
                                             [--duration 60] [--think 2] [--browse-clients 2] [--reuse]

Fills ``distillery_bench_review`` (COPY, a few hundred thousand rows a second), starts the app under gunicorn
(gthread workers, DEBUG off) on loopback, and drives HTTP exactly as the review page does: each annotator
posts a decision and gets the next item back in the same response (the round trip an annotator waits for);
every tenth step it reloads the queue (a plain next-item request). Browse clients page through a filtered
list (pending items with a truncated candidate). Annotators look at each item for ``--think`` seconds on
average (0 saturates the server and measures its throughput instead of an annotator's wait). Prints requests/s, p50/p95/p99 and errors per kind, checks
that no item was handed out beyond its overlap, and writes bench/results/review_latency.json.

After the load, one annotator saves back to back with no think time (submit_back_to_back: the server's own
cost of a save), and a probe times PostgreSQL's ``SELECT 1`` right after a pause as long as the think time:
on the microVMs we measure on, every round trip after a pause is slower (by more the longer the pause), so
the load phase's figures include that machine effect. One client also times the browse full-text search alone (``--search-requests`` each) for a rare
word (in about one completion in 100,000) and a common one (in about 9 of 10 completions), first and second
page; then the database queries of one request of each kind are counted in process (Django's query capture
on the same database and settings): the save round trip, the next item, a filtered browse page, a search.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
# BENCH_REVIEW_DB: another database name, so two benches on one server do not drop each other's.
DB_NAME = os.environ.get("BENCH_REVIEW_DB", "distillery_bench_review")
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
PASSWORD = "bench-password-1"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--completions", type=int, default=1_000_000)
    parser.add_argument("--prompts-per", type=int, default=4, help="completions per prompt (default 4: 250k prompts)")
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--browse-clients", type=int, default=2)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=2.0,
                        help="mean seconds an annotator looks at an item before deciding (0: saturate the server)")
    parser.add_argument("--overlap", type=int, default=1, help="the project's reviews_required")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--reuse", action="store_true", help="keep the database if it already holds this N")
    parser.add_argument("--search-requests", type=int, default=40, help="timed searches per term and page")
    parser.add_argument("--back-to-back", type=int, default=200, help="saves timed alone with no think time")
    parser.add_argument("--out", default=str(ROOT / "bench/results/review_latency.json"))
    return parser.parse_args()


# --- database ---------------------------------------------------------------------------------------------


def prepare_database(args: argparse.Namespace) -> float:
    """Create (or reuse) the database, migrate, and fill it; returns the seconds the fill took."""
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if exists and args.reuse and _holds(args.completions):
            print(f"reusing {DB_NAME} with {args.completions:,} completions", flush=True)
            return 0.0
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True, env=server_env(args))
    started = time.perf_counter()
    fill(args)
    return time.perf_counter() - started


def _holds(completions: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(DB_URL) as conn:
            return conn.execute("SELECT count(*) FROM curation_completion").fetchone()[0] == completions
    except psycopg.Error:
        return False


RARE_WORD, RARE_EVERY = "zymurgy", 100_000  # one completion in RARE_EVERY holds the rare word
COMMON_WORD = "python"  # one of WORDS: in ~92% of completions


def setup_django(args: argparse.Namespace) -> None:
    """This process as the server is configured (same database, DEBUG off), for the fill and the query counts."""
    import django

    os.environ.update(server_env(args))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()


def fill(args: argparse.Namespace) -> None:
    """Users, one project and its members through the ORM; prompts, completions and flags through COPY."""
    setup_django(args)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from curation.models import Membership, Project

    project = Project.objects.create(name="Bench", slug="bench", reviews_required=args.overlap,
                                     guidelines="## Guidelines\n\nPrefer **short, correct** answers.")
    User = get_user_model()
    for i in range(args.annotators):
        user = User.objects.create_user(f"annotator{i}", password=PASSWORD)
        Membership.objects.create(project=project, user=user, role=Membership.Role.ANNOTATOR)
    curator = User.objects.create_user("curator", password=PASSWORD)
    Membership.objects.create(project=project, user=curator, role=Membership.Role.CURATOR)
    n_prompts = args.completions // args.prompts_per
    rng = random.Random(0)
    words = "the a model answer question because therefore result value number list code python step first then".split()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor().copy(
            "COPY curation_prompt (id, project_id, messages, text, external_id, metadata, content_hash, status,"
            " review_count, claimed, needs_adjudication, created_at, updated_at) FROM STDIN"
        ) as copy:
            for pid in range(1, n_prompts + 1):
                text = f"Question {pid}: " + " ".join(rng.choices(words, k=12)) + "?"
                copy.write_row((pid, project.pk, json.dumps([{"role": "user", "content": text}]), text, str(pid), "{}",
                                f"{pid:064x}", "pending", 0, 0, False, "now", "now"))
        flags = []  # one COPY at a time per connection: the flags go in after the completions
        with raw.cursor().copy(
            "COPY curation_completion (id, prompt_id, text, text_hash, source, params, finish_reason, length, created_at)"
            " FROM STDIN"
        ) as copy:
            cid = 0
            for pid in range(1, n_prompts + 1):
                for j in range(args.prompts_per):
                    cid += 1
                    text = f"Answer {j} to {pid}. " + " ".join(rng.choices(words, k=rng.randint(20, 60)))
                    if (cid + 1) % RARE_EVERY == 0:
                        text += f" {RARE_WORD}."
                    cut = rng.random() < 0.05
                    copy.write_row((cid, pid, text, f"{cid:064x}", f"teacher-{j % 2}", "{}", "length" if cut else "stop",
                                    len(text), "now"))
                    if cut:
                        flags.append((pid, cid, "truncated", "stopped at the token limit", "now"))
        with raw.cursor().copy("COPY curation_flag (prompt_id, completion_id, kind, detail, created_at) FROM STDIN") as copy:
            for row in flags:
                copy.write_row(row)
        for table in ("curation_prompt", "curation_completion"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("ANALYZE")
    rate = (n_prompts + args.completions) / (time.perf_counter() - started)
    print(f"filled {n_prompts:,} prompts and {args.completions:,} completions ({rate:,.0f} rows/s)", flush=True)


# --- the server -------------------------------------------------------------------------------------------


def server_env(args: argparse.Namespace) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=DB_URL, DJANGO_DEBUG="0", SECRET_KEY="bench-only-secret-key-" + "x" * 40,
                ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="0", LOG_LEVEL="WARNING",
                DISTILLERY_VAR_DIR=str(ROOT / "var/bench"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(args: argparse.Namespace) -> subprocess.Popen:
    gunicorn = ROOT / ".venv/bin/gunicorn"
    args.port = args.port or free_port()
    server = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "-b", f"127.0.0.1:{args.port}", "--workers", str(args.workers),
         "--worker-class", "gthread", "--threads", str(args.threads), "--keep-alive", "30", "--log-level", "warning"],
        cwd=ROOT, env=server_env(args), start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:  # an exit means the port was taken, or worse
        try:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"gunicorn did not answer /healthz on port {args.port} within 60 s")


# --- the clients ------------------------------------------------------------------------------------------


class BrowserConnection(http.client.HTTPConnection):
    """TCP_NODELAY, as browsers set it: http.client writes a POST's headers and body in two sends, which
    Nagle's algorithm may otherwise hold apart until the server's delayed ACK."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Session:
    """One browser's worth of HTTP: a keep-alive connection, its cookies, the CSRF header htmx would send."""

    def __init__(self, port: int):
        self.port = port
        self.conn = BrowserConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: dict | None = None, htmx: bool = True) -> tuple[int, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if htmx:
            headers["HX-Request"] = "true"
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        data = None
        if body is not None:
            data = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # a dropped keep-alive connection: reconnect once
            self.conn = BrowserConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, response.read().decode("utf-8", "replace")

    def login(self, username: str) -> None:
        _, page = self.request("GET", "/accounts/login/", htmx=False)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        status, _ = self.request("POST", "/accounts/login/", {"username": username, "password": PASSWORD,
                                                              "csrfmiddlewaretoken": token}, htmx=False)
        if status != 302:
            raise RuntimeError(f"login of {username} failed: {status}")


ITEM = re.compile(r'data-prompt="(\d+)"')
VERSION = re.compile(r'name="version" value="(\d+)"')
CANDIDATE = re.compile(r'class="cand[^"]*" data-id="(\d+)"')


class Run:
    """Every client logs in, then all start together and run for the same bounded time."""

    def __init__(self, clients: int, duration: float):
        self.barrier = threading.Barrier(clients, action=self._start)
        self.duration = duration
        self.started = self.stop = 0.0
        self.failures: list[str] = []

    def _start(self) -> None:
        self.started = time.perf_counter()
        self.stop = time.monotonic() + self.duration

    def ready(self) -> float:
        self.barrier.wait()
        return self.stop

    def guard(self, target, *args) -> None:
        try:
            target(*args)
        except Exception as exc:  # noqa: BLE001 - reported in the summary, the other clients go on
            self.failures.append(f"{target.__name__}: {exc!r}")
            self.barrier.abort() if not self.started else None


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}

    def add(self, kind: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.samples.setdefault(kind, []).append(seconds)
            if not ok:
                self.errors[kind] = self.errors.get(kind, 0) + 1


def annotate(username: str, port: int, run: Run, recorder: Recorder, reviewed: list[int], think: float) -> None:
    rng = random.Random(username)
    session = Session(port)
    session.login(username)  # password hashing is slow on purpose: logins happen before the clock starts
    stop = run.ready()
    status, page = session.request("GET", "/p/bench/queue/")
    step = 0
    while time.monotonic() < stop:
        item, version = ITEM.search(page), VERSION.search(page)
        if item is None or version is None:
            return  # the queue is empty for this annotator
        candidates = CANDIDATE.findall(page)
        if think:
            time.sleep(min(rng.uniform(0.5, 1.5) * think, max(0.0, stop - time.monotonic())))
            if time.monotonic() >= stop:
                break
        roll = rng.random()
        decision = "approve" if roll < 0.7 else "reject" if roll < 0.9 else "skip"
        ranking = rng.sample(candidates, len(candidates)) if rng.random() < 0.5 else []
        body = {"decision": decision, "version": version.group(1), "ranking": ",".join(ranking),
                "chosen": (ranking or candidates)[0] if decision == "approve" else "",
                "edited_text": "An edited answer." if decision == "approve" and rng.random() < 0.2 else "",
                "comment": "", "seconds_spent": f"{rng.uniform(5, 40):.1f}"}
        started = time.perf_counter()
        status, page = session.request("POST", f"/p/bench/items/{item.group(1)}/review/", body)
        recorder.add("submit_and_next", time.perf_counter() - started, status == 200)
        reviewed.append(int(item.group(1)))
        step += 1
        if step % 10 == 0:
            started = time.perf_counter()
            status, page = session.request("GET", "/p/bench/queue/")
            recorder.add("next_item", time.perf_counter() - started, status == 200)


def browse(port: int, run: Run, recorder: Recorder, think: float) -> None:
    rng = random.Random()
    session = Session(port)
    session.login("curator")
    stop = run.ready()
    query = {"status": "pending", "flag": "truncated"}
    cursor = None
    while time.monotonic() < stop:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        started = time.perf_counter()
        status, page = session.request("GET", "/p/bench/browse/?" + urlencode(params))
        recorder.add("browse_filtered", time.perf_counter() - started, status == 200 and "row-link" in page)
        if think:
            time.sleep(rng.uniform(0.25, 0.75) * think)  # a curator reads the page before the next one
        found = re.search(r"cursor=(\d+)", page)
        cursor = found.group(1) if found and cursor is None else None  # first page, then the second, again


def time_back_to_back(port: int, recorder: Recorder, requests: int) -> None:
    """One annotator saving with no think time at all, alone on the server: what a save costs the server and
    the database when nothing waits (the load phase above adds the machine's wake-up after each pause)."""
    session = Session(port)
    session.login("annotator0")
    status, page = session.request("GET", "/p/bench/queue/")
    for _ in range(requests):
        item, version = ITEM.search(page), VERSION.search(page)
        if item is None or version is None:
            return
        candidates = CANDIDATE.findall(page)
        body = {"decision": "approve", "version": version.group(1), "ranking": ",".join(candidates),
                "chosen": candidates[0], "edited_text": "", "comment": "", "seconds_spent": "3.0"}
        started = time.perf_counter()
        status, page = session.request("POST", f"/p/bench/items/{item.group(1)}/review/", body)
        recorder.add("submit_back_to_back", time.perf_counter() - started, status == 200)


def idle_wake_probe(pause: float, rounds: int = 15) -> dict[str, float]:
    """This machine's cost of a pause: the median round trip of ``SELECT 1`` to PostgreSQL right after sleeping
    ``pause`` seconds, against back to back. On the microVMs we measure on, the first round trips after a pause
    are much slower than hot ones (they grow with the pause), whatever the app does; an annotator's think
    time is such a pause, so this is printed beside the latencies it inflates."""
    import psycopg

    def median_round_trip(sleep: float) -> float:
        samples = []
        with psycopg.connect(DB_URL, autocommit=True) as conn:
            for _ in range(rounds):
                time.sleep(sleep)
                started = time.perf_counter()
                conn.execute("SELECT 1")
                samples.append(time.perf_counter() - started)
        return statistics.median(samples) * 1000

    return {"hot_ms": median_round_trip(0.0), "after_pause_ms": median_round_trip(pause), "pause_s": pause}


def time_searches(port: int, recorder: Recorder, requests: int) -> None:
    """Full-text search alone: a rare and a common word, first page and the next one."""
    session = Session(port)
    session.login("curator")
    for word in (RARE_WORD, COMMON_WORD):
        for _ in range(requests):
            started = time.perf_counter()
            status, page = session.request("GET", "/p/bench/browse/?" + urlencode({"q": word}))
            recorder.add(f"search_{'rare' if word == RARE_WORD else 'common'}", time.perf_counter() - started,
                         status == 200 and "row-link" in page)
            found = re.search(r"cursor=(\d+)", page)
            if word == COMMON_WORD and found:
                started = time.perf_counter()
                status, page = session.request("GET", "/p/bench/browse/?" + urlencode({"q": word, "cursor": found.group(1)}))
                recorder.add("search_common_page2", time.perf_counter() - started, status == 200 and "row-link" in page)


def count_queries(args: argparse.Namespace) -> dict[str, int]:
    """Database queries of one request of each kind, counted in this process on the bench database."""
    setup_django(args)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1", HTTP_HX_REQUEST="true")
    client.force_login(get_user_model().objects.get(username=f"annotator{args.annotators - 1}"))
    counts: dict[str, int] = {}

    def count(kind: str, method: str, path: str, data: dict | None = None) -> str:
        with CaptureQueriesContext(connection) as captured:
            response = getattr(client, method)(path, data or {})
        counts[kind] = len(captured.captured_queries)
        return response.content.decode()

    page = count("next_item", "get", "/p/bench/queue/")
    item, version, candidates = ITEM.search(page), VERSION.search(page), CANDIDATE.findall(page)
    if item and version:
        body = {"decision": "approve", "version": version.group(1), "ranking": ",".join(candidates),
                "chosen": candidates[0] if candidates else "", "edited_text": "", "comment": "", "seconds_spent": "9"}
        count("submit_and_next", "post", f"/p/bench/items/{item.group(1)}/review/", body)
    client.force_login(get_user_model().objects.get(username="curator"))
    count("browse_filtered", "get", "/p/bench/browse/", {"status": "pending", "flag": "truncated"})
    count("search_rare", "get", "/p/bench/browse/", {"q": RARE_WORD})
    count("search_common", "get", "/p/bench/browse/", {"q": COMMON_WORD})
    return counts


# --- the run ----------------------------------------------------------------------------------------------


def summarize(recorder: Recorder, elapsed: float) -> dict:
    report = {}
    for kind, samples in sorted(recorder.samples.items()):
        ordered = sorted(samples)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
        report[kind] = {
            "requests": len(samples), "requests_per_s": len(samples) / elapsed if elapsed else 0.0, "errors": recorder.errors.get(kind, 0),
            "p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99), "mean_ms": statistics.fmean(samples) * 1000,
        }
    return report


def overlap_violations(overlap: int) -> int:
    import psycopg

    with psycopg.connect(DB_URL) as conn:
        return conn.execute(
            "SELECT count(*) FROM (SELECT prompt_id FROM curation_review WHERE decision <> 'skip'"
            " GROUP BY prompt_id HAVING count(*) > %s) AS over", [overlap]
        ).fetchone()[0]


def main() -> None:
    args = parse_args()
    fill_seconds = prepare_database(args)
    server = start_server(args)
    recorder, reviewed = Recorder(), []
    try:
        run = Run(args.annotators + args.browse_clients, args.duration)
        threads = [threading.Thread(target=run.guard, args=(annotate, f"annotator{i}", args.port, run, recorder, reviewed, args.think))
                   for i in range(args.annotators)]
        threads += [threading.Thread(target=run.guard, args=(browse, args.port, run, recorder, args.think))
                    for _ in range(args.browse_clients)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        elapsed = time.perf_counter() - run.started if run.started else 0.0
        load_after_run = os.getloadavg()
        time_searches(args.port, recorder, args.search_requests)
        time_back_to_back(args.port, recorder, args.back_to_back)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    queries = count_queries(args)
    queries["submit_back_to_back"] = queries.get("submit_and_next")
    wake = idle_wake_probe(max(args.think, 0.5))
    result = {
        "queries_per_request": queries, "load_average_after_load_phase": load_after_run,
        "completions": args.completions, "prompts": args.completions // args.prompts_per, "annotators": args.annotators,
        "browse_clients": args.browse_clients, "duration_s": round(elapsed, 1), "overlap": args.overlap,
        "think_s": args.think, "load_average_at_end": os.getloadavg(),
        "server": f"gunicorn gthread {args.workers}x{args.threads}", "fill_seconds": round(fill_seconds, 1),
        "cpu_count": os.cpu_count(), "results": summarize(recorder, elapsed),
        "items_reviewed": len(reviewed), "overlap_violations": overlap_violations(args.overlap),
        "client_failures": run.failures, "idle_wake_probe": wake,
    }
    print(f"\n{result['completions']:,} completions over {result['prompts']:,} prompts; {args.annotators} annotators, "
          f"{args.browse_clients} browse clients, think {args.think} s, {elapsed:.0f} s, {result['server']}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'kind':<20}{'req':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'queries':>9}")
    for kind, row in result["results"].items():
        rate = f"{row['requests_per_s']:>9.1f}" if not kind.startswith("search") else f"{'(alone)':>9}"
        print(f"{kind:<20}{row['requests']:>8}{rate}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
              f"{row['p99_ms']:>9.1f}{row['errors']:>8}{queries.get(kind, ''):>9}")
    print(f"items reviewed: {len(reviewed):,}; items reviewed beyond their overlap: {result['overlap_violations']}")
    print(f"this machine after a pause: SELECT 1 takes {wake['after_pause_ms']:.1f} ms after {wake['pause_s']:.1f} s idle,"
          f" {wake['hot_ms']:.2f} ms back to back (an annotator's think time is such a pause; submit_back_to_back"
          f" is a save with none)")
    for failure in run.failures:
        print(f"client failure: {failure}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
