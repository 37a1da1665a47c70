"""Two real ``marrow-triage serve`` replicas against one PostgreSQL database give the answers
one process would.

Many episodes check in at once, each request sent to a replica picked at random, some as
pairs at the same instant sent to both replicas together. Midway one replica is killed
with SIGKILL; clients retry what it did not acknowledge on the other with the same
``checkin_id``, as a load balancer's client would. Then every episode's stored history must
hold each check-in exactly once, every acknowledged result must be the stored one, and
every stored result must equal what one process recording the check-ins in ``at`` order
gives.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from marrow_triage import TriageEngine, TriageResult
from marrow_triage.timeline import SQLiteStore, Timeline

pytestmark = pytest.mark.slow

TOKEN = "replica-test-token-000000000000000000"
EPISODES = 36
STEPS = 6
REPORTS: list[dict[str, Any]] = [
    {"temperature": {"value": 38.1, "unit": "C"}},
    {"temperature": {"value": 38.0, "unit": "C"}, "site_pain": 3},
    {"temperature": {"value": 37.4, "unit": "C"}, "bleeding": "stops_with_pressure"},
    {"temperature": {"value": 38.2, "unit": "C"}, "low_white_cell_count": True},
    {"site_pain": 2}, {"site_pain": 4}, {"site_pain": 6},
    {"bleeding": "stops_with_pressure", "site_pain": 5},
    {"temperature": {"value": 36.9, "unit": "C"}, "bleeding": "spots_on_dressing"},
]


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(db_url: str, log: Path) -> Replica:
    port = _port()
    env = {**os.environ, "MARROW_TRIAGE_API_TOKEN": TOKEN, "MARROW_TRIAGE_DB": db_url,
           "MARROW_TRIAGE_DB_POOL_SIZE": "4"}
    script = Path(sys.executable).with_name("marrow-triage")
    command = [str(script)] if script.exists() else [
        sys.executable, "-c", "from marrow_triage.adapters.cli import main; main()"]
    with log.open("wb") as out:
        process = subprocess.Popen([*command, "serve", "--port", str(port)], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"replica exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return Replica(url, process)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("replica did not start in 60 s")


@pytest.fixture()
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[list[Replica]]:
    started = [_start(postgres_url, tmp_path / f"replica-{n}.log") for n in range(2)]
    yield started
    for replica in started:
        if replica.process.poll() is None:
            replica.process.terminate()
            try:
                replica.process.wait(20)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()


def _workload(rng: random.Random, base: datetime) -> dict[str, list[list[dict[str, Any]]]]:
    """Per episode, steps in time order; a step is one check-in or two at the same instant."""
    plan: dict[str, list[list[dict[str, Any]]]] = {}
    for e in range(EPISODES):
        episode = f"ep-{e:03d}"
        start = base + timedelta(minutes=rng.randrange(0, 600))
        steps = []
        for s in range(STEPS):
            at = start + timedelta(minutes=35 * s)
            hours = 10 + 35 * s / 60
            size = 2 if rng.random() < 0.3 else 1
            steps.append([{
                "report": {"hours_since_procedure": hours, **rng.choice(REPORTS)},
                "at": at.isoformat().replace("+00:00", "Z"),
                "checkin_id": f"{episode}-s{s}-{k}",
            } for k in range(size)])
        plan[episode] = steps
    return plan


def test_two_replicas_give_the_answers_of_one(replicas: list[Replica], postgres_url: str,
                                              tmp_path: Path, engine: TriageEngine) -> None:
    rng = random.Random(20261125)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    plan = _workload(rng, base)
    acked: dict[str, dict[str, Any]] = {}  # checkin_id -> acknowledged result
    lock = threading.Lock()
    killed = threading.Event()
    sent = 0
    kill_after = EPISODES * STEPS // 2
    clients = [httpx.Client(base_url=r.url, headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=60) for r in replicas]

    def send(episode: str, checkin: dict[str, Any], choice: int) -> None:
        nonlocal sent
        for attempt in range(20):
            target = 0 if killed.is_set() or attempt else choice
            try:
                response = clients[target].post(f"/v1/episodes/{episode}/checkins",
                                                json=checkin)
            except httpx.TransportError:
                continue  # the replica died under this request: retry on the other
            assert response.status_code == 200, response.text
            with lock:
                acked[checkin["checkin_id"]] = response.json()["result"]
                sent += 1
                if sent == kill_after:
                    # SIGKILL mid-load: requests to it are in flight on other threads.
                    replicas[1].process.send_signal(signal.SIGKILL)
                    killed.set()
            return
        raise AssertionError(f"{checkin['checkin_id']} was never acknowledged")

    def run(episode: str) -> None:
        for step in plan[episode]:
            if len(step) == 1:
                send(episode, step[0], rng_choice(episode))
                continue
            # The same instant, one check-in to each replica, together.
            pair = [threading.Thread(target=send, args=(episode, c, k))
                    for k, c in enumerate(step)]
            for thread in pair:
                thread.start()
            for thread in pair:
                thread.join()

    choices = random.Random(7)
    choice_lock = threading.Lock()

    def rng_choice(_episode: str) -> int:
        with choice_lock:
            return choices.randrange(2)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run, sorted(plan)))
    for client in clients:
        client.close()
    assert killed.is_set()
    assert replicas[1].process.wait(10) == -signal.SIGKILL

    expected_ids = {c["checkin_id"] for steps in plan.values() for step in steps for c in step}
    assert set(acked) == expected_ids  # every check-in acknowledged (after retries)

    with httpx.Client(base_url=replicas[0].url,
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        stored = {e: client.get(f"/v1/episodes/{e}").json()["checkins"] for e in plan}

    # None lost, none stored twice.
    stored_ids = [c["checkin_id"] for checkins in stored.values() for c in checkins]
    assert sorted(stored_ids) == sorted(expected_ids)

    # Every acknowledged result is the stored one, and equals one process's, in at order.
    with SQLiteStore(tmp_path / "one-process.db") as store:
        one = Timeline(store, engine, clock=lambda: datetime.now(UTC) + timedelta(days=1))
        for episode, checkins in stored.items():
            for checkin in checkins:  # the store's order: at, then the order committed
                assert acked[checkin["checkin_id"]] == checkin["result"]
                alone = one.record(episode, checkin["report"],
                                   datetime.fromisoformat(checkin["at"]))
                # Byte for byte: the explanations list same-instant check-ins in one order.
                assert alone.model_dump_json() == TriageResult.model_validate(
                    checkin["result"]).model_dump_json(), (episode, checkin["checkin_id"])
