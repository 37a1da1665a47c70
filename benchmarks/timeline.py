"""`make bench-timeline`: recording a check-in (read history + evaluate + write, one
transaction) on SQLite and PostgreSQL, by history length and store size; evaluation alone;
and two service replicas' throughput against one.

    python benchmarks/timeline.py [--stored 1000000] [--samples 200] [--skip-replicas]

* record p50/p99: ``Timeline.record`` of one new check-in into episodes that already hold
  1, 100 or 1,000 check-ins, in a store holding only those episodes and in one holding
  ``--stored`` check-ins (bulk-loaded with executemany / COPY into a throwaway database).
  Each sample is a different episode, so every sample has the same history length. The
  new check-in comes after the others (weighed from the episode's history state); then
  "late": one earlier than the latest (every check-in read, the state rebuilt).
* evaluate p50/p99: ``Timeline.evaluate`` over 1, 100 and 1,000 earlier check-ins, no store.
* replicas: check-ins per second through one, then two ``marrow-triage serve`` processes
  on one PostgreSQL database, 8 client threads, distinct episodes.

PostgreSQL is a throwaway cluster (tests/postgres_server.py) with fsync on, or the server
in MARROW_TRIAGE_TEST_PG_URL. Counts and ratios are printed; nothing asserts a time.
Targets (issue 12): record p99 <= 10 ms on PostgreSQL with 1,000,000 stored; evaluating a
history of 1,000 check-ins <= 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from marrow_triage import SymptomReport, TriageEngine, default_engine  # noqa: E402
from marrow_triage.timeline import Reported, Timeline, open_store  # noqa: E402
from marrow_triage.timeline.store import report_json, to_micros  # noqa: E402
from postgres_server import PostgresCluster  # noqa: E402

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
HISTORIES = (1, 100, 1000)
FILLER = {"hours_since_procedure": 30, "site_pain": 2, "bleeding": "none",
          "temperature": {"value": 36.8, "unit": "C"}, "site_discharge": "none",
          "back_or_abdominal_pain": 0, "low_white_cell_count": False,
          "recent_chemotherapy": False}
NEW = {"hours_since_procedure": 40, "site_pain": 3, "temperature": {"value": 38.1, "unit": "C"}}
TARGETS = {"pg_record_p99_ms_at_1m": 10.0, "evaluate_1000_ms": 5.0}


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p50 = statistics.median(ordered) / 1e6
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6
    return p50, p99


def _rows(engine: TriageEngine, episodes: int, history: int, prefix: str,
          minutes: int) -> list[tuple[str, int, str, str]]:
    report = SymptomReport.model_validate(FILLER)
    report_text = report_json(report)
    result_text = engine.triage(report).model_dump_json()
    return [(f"{prefix}-{e}", to_micros(T0 + timedelta(minutes=minutes * i)), report_text,
             result_text) for e in range(episodes) for i in range(history)]


def bulk_load(url: str, rows: list[tuple[str, int, str, str]] | Any) -> None:
    """Rows straight into the store's table: executemany (SQLite) or COPY (PostgreSQL)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as db:
            db.executemany("INSERT INTO checkins (episode_id, at_us, report, result) "
                           "VALUES (?, ?, ?, ?)", rows)
        return
    import psycopg

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    with psycopg.connect(url) as conn, conn.cursor() as cursor, cursor.copy(
            "COPY checkins (episode_id, at, report, result) FROM STDIN") as copy:
        for episode_id, at_us, report, result in rows:
            copy.write_row((episode_id, epoch + timedelta(microseconds=at_us), report, result))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE checkins")


def filler(engine: TriageEngine, url: str, stored: int) -> None:
    """``stored`` check-ins in 10-check-in episodes, loaded in chunks."""
    chunk = 100_000
    for start in range(0, stored, chunk):
        count = min(chunk, stored - start)
        bulk_load(url, _rows(engine, count // 10, 10, f"fill{start}", 60))
    if not url.startswith("sqlite"):
        # Flush the import's dirty pages now: a store that holds 1,000,000 check-ins has
        # not just written them all, so the records measured should not wait for that.
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            try:
                conn.execute("CHECKPOINT")
            except psycopg.Error as exc:  # not a superuser on a server of your own
                print(f"  (no CHECKPOINT after the load: {exc})", flush=True)


def record_samples(url: str, engine: TriageEngine, history: int,
                   samples: int) -> tuple[list[int], list[int]]:
    """Prepare ``samples`` episodes of ``history`` check-ins, then time one record in each
    at the end (in order: weighed from the episode's state), then one in the middle (late:
    earlier than the latest, so every check-in is read and the state rebuilt).

    The episodes are bulk-loaded with one check-in fewer, and the last one is recorded
    through the timeline: a bulk load writes no history state, so that record reads the
    episode and writes the state, as every record into a live episode has."""
    minutes = 5 if history > 100 else 30
    bulk_load(url, _rows(engine, samples, history - 1, f"h{history}", minutes))
    store = open_store(url)
    timeline = Timeline(store, engine, clock=lambda: T0 + timedelta(days=60))
    try:
        last = T0 + timedelta(minutes=minutes * (history - 1))
        at = T0 + timedelta(minutes=minutes * history)
        timeline.record("warm-up", NEW, at)
        for e in range(samples):
            timeline.record(f"h{history}-{e}", FILLER, last)
        in_order, late = [], []
        for e in range(samples):
            start = time.perf_counter_ns()
            timeline.record(f"h{history}-{e}", NEW, at)
            in_order.append(time.perf_counter_ns() - start)
        for e in range(samples):
            start = time.perf_counter_ns()
            timeline.record(f"h{history}-{e}", FILLER, at - timedelta(minutes=minutes / 2))
            late.append(time.perf_counter_ns() - start)
        return in_order, late
    finally:
        store.close()


def evaluate_samples(engine: TriageEngine, history: int, samples: int) -> list[int]:
    timeline = Timeline(open_store(":memory:"), engine)
    report = SymptomReport.model_validate(FILLER)
    earlier = [Reported(i, T0 + timedelta(minutes=5 * i), report) for i in range(history)]
    new = SymptomReport.model_validate(NEW)
    at = T0 + timedelta(minutes=5 * history)
    single = engine.triage(new)
    timeline.evaluate(earlier, new, at, single)
    out = []
    for _ in range(samples):
        start = time.perf_counter_ns()
        timeline.evaluate(earlier, new, at, single)
        out.append(time.perf_counter_ns() - start)
    return out


def backend_table(name: str, make_url: Callable[[], str], engine: TriageEngine,
                  stored: int, samples: int) -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    for label, fill in (("small", 0), (f"{stored:,} stored", stored)):
        url = make_url()
        open_store(url).close()  # create the schema
        if fill:
            began = time.perf_counter()
            filler(engine, url, fill)
            print(f"  {name}: loaded {fill:,} check-ins in {time.perf_counter() - began:.1f} s",
                  flush=True)
        for history in HISTORIES:
            n = samples if history < 1000 else max(20, samples // 4)
            in_order, late = record_samples(url, engine, history, n)
            p50, p99 = percentiles(in_order)
            late_p50, late_p99 = percentiles(late)
            results[f"{label} h={history}"] = (p50, p99)
            results[f"{label} late h={history}"] = (late_p50, late_p99)
            print(f"  {name:<10} {label:>16}  history {history:>5}: record p50 {p50:7.2f} ms"
                  f"  p99 {p99:7.2f} ms; late p50 {late_p50:7.2f} ms  p99 {late_p99:7.2f} ms"
                  f"  (n={n})", flush=True)
    return results


def replicas_throughput(url: str, count: int) -> tuple[float, float]:
    """Check-ins per second through one replica, then two (8 client threads)."""
    import httpx

    token = "bench-token-" + "0" * 32
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []

    def start() -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "MARROW_TRIAGE_API_TOKEN": token, "MARROW_TRIAGE_DB": url,
               "MARROW_TRIAGE_DB_POOL_SIZE": "8"}
        script = Path(sys.executable).with_name("marrow-triage")
        procs.append(subprocess.Popen([str(script), "serve", "--port", str(port)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        urls.append(base)

    def run(tag: str) -> float:
        clients = [httpx.Client(base_url=u, headers={"Authorization": f"Bearer {token}"},
                                timeout=60) for u in urls]
        now = datetime.now(UTC).replace(microsecond=0)
        lock = threading.Lock()
        counter = iter(range(count))

        def work(_: int) -> None:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                body = {"report": NEW, "at": (now - timedelta(minutes=n % 50)).isoformat()}
                clients[n % len(clients)].post(f"/v1/episodes/{tag}-{n % 400}/checkins",
                                               json=body).raise_for_status()

        began = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        rate = count / (time.perf_counter() - began)
        for client in clients:
            client.close()
        return rate

    try:
        start()
        run("warm1")
        one = run("one")
        start()
        run("warm2")
        two = run("two")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    return one, two


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--replica-checkins", type=int, default=2000)
    parser.add_argument("--skip-replicas", action="store_true")
    args = parser.parse_args()
    engine = default_engine()
    print(f"timeline bench: {args.stored:,} stored, {args.samples} samples, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cpu", flush=True)

    print("evaluate (no store):")
    evaluate: dict[int, tuple[float, float]] = {}
    for history in HISTORIES:
        evaluate[history] = percentiles(evaluate_samples(engine, history, args.samples))
        print(f"  history {history:>5}: p50 {evaluate[history][0]:6.2f} ms  "
              f"p99 {evaluate[history][1]:6.2f} ms", flush=True)

    with tempfile.TemporaryDirectory(prefix="marrow-bench-") as tmp:
        counter = iter(range(100))
        sqlite = backend_table(
            "sqlite", lambda: f"sqlite:///{Path(tmp) / f'bench-{next(counter)}.db'}", engine,
            args.stored, args.samples)
    with PostgresCluster(durable=True) as cluster:
        pg = backend_table("postgresql", cluster.create_database, engine, args.stored,
                           args.samples)
        one = two = 0.0
        if not args.skip_replicas:
            one, two = replicas_throughput(cluster.create_database(), args.replica_checkins)
            print(f"replicas: one {one:.0f} check-ins/s, two {two:.0f} check-ins/s, "
                  f"ratio {two / one:.2f}", flush=True)

    big = f"{args.stored:,} stored"
    summary = {
        "evaluate_1000_p99_ms": round(evaluate[1000][1], 2),
        "evaluate_growth_1000_vs_1": round(evaluate[1000][0] / evaluate[1][0], 2),
        "sqlite_record_p99_ms_at_stored_h1": round(sqlite[f"{big} h=1"][1], 2),
        "pg_record_p99_ms_at_stored_h1": round(pg[f"{big} h=1"][1], 2),
        "pg_record_p99_ms_at_stored_h1000": round(pg[f"{big} h=1000"][1], 2),
        "pg_store_size_ratio_h1": round(pg[f"{big} h=1"][0] / pg["small h=1"][0], 2),
        "pg_history_growth_1000_vs_1": round(pg[f"{big} h=1000"][0] / pg[f"{big} h=1"][0], 2),
        "sqlite_history_growth_1000_vs_1": round(
            sqlite[f"{big} h=1000"][0] / sqlite[f"{big} h=1"][0], 2),
        "pg_late_growth_1000_vs_1": round(
            pg[f"{big} late h=1000"][0] / pg[f"{big} late h=1"][0], 2),
        "replicas_two_vs_one": round(two / one, 2) if one else None,
    }
    print(json.dumps(summary))
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
