"""Simulated residents for the load test: a Locust run, in a process of its own (Locust
patches the standard library with gevent), driven by ``benchmarks.load``.

    python -m benchmarks.residents URL USERS QUESTIONS SERVER_PID OUT.json < questions.json

Each resident is a Locust ``FastHttpUser`` that asks its questions one after another, with
no pause, through Gradio's named-API queue protocol (POST /gradio_api/call/ask → event id,
GET /gradio_api/call/ask/<id> → the answer as Server-Sent Events), the protocol
gradio_client and curl use. A gradio_client user costs more CPU per answer than the server
does (measured: ~100 ms against ~50–80 ms), and on a 2-core machine that would measure the
load generator, not the app: this user costs ~3 ms. Each resident sends its own
X-Forwarded-For address, as a reverse proxy would, so the server tells them apart.

All residents are spawned and wait at a barrier; the measured window runs from the barrier
to the last answer. The server's and this process's CPU seconds are read over that window.
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import psutil  # noqa: E402
from locust import constant, task  # noqa: E402
from locust.contrib.fasthttp import FastHttpUser  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.exception import StopUser  # noqa: E402

BUSY = "混み合っています。しばらくしてからお試しください。"
TIMEOUT_S = 120.0  # one answer; a hang shows up as an error, not a stuck run


class Run:
    """What the residents share: the questions, the barrier, and every outcome."""

    def __init__(self, questions: list[str], per_user: int) -> None:
        self.questions = questions
        self.per_user = per_user
        self.spawned = 0
        self.ready = 0
        self.go = gevent.event.Event()
        self.results: list[dict] = []  # one per question: kind, seconds, detail


RUN: Run | None = None


def classify(answer: dict) -> str:
    """cited: the plan covers it (directly or in part) and every quote's number is in the text;
    abstained: not covered (it may quote the nearest bullets); uncited: a defect."""
    cites = answer.get("citations") or []
    numbered = all(f"[{c['n']}]" in answer.get("answer", "") for c in cites)
    if answer.get("coverage", "none" if answer.get("abstained") else "direct") == "none":
        return "abstained" if numbered else "uncited"
    return "cited" if cites and numbered else "uncited"


class Resident(FastHttpUser):
    wait_time = constant(0)
    network_timeout = TIMEOUT_S
    connection_timeout = 10.0

    def on_start(self) -> None:
        RUN.spawned += 1
        self.index = RUN.spawned
        # a distinct loopback address a line, as a proxy would name each resident
        self.headers = {"X-Forwarded-For": f"127.77.{self.index // 250}.{self.index % 250 + 1}",
                        "Content-Type": "application/json"}
        self.asked = 0
        RUN.ready += 1
        RUN.go.wait()

    @task
    def ask(self) -> None:
        if self.asked >= RUN.per_user:
            raise StopUser()
        question = RUN.questions[((self.index - 1) * RUN.per_user + self.asked) % len(RUN.questions)]
        self.asked += 1
        t0 = time.perf_counter()
        kind, detail = self._ask(question)
        RUN.results.append({"kind": kind, "seconds": time.perf_counter() - t0, "detail": detail})

    def _ask(self, question: str) -> tuple[str, str]:
        body = json.dumps({"data": [question, "[]"]}, ensure_ascii=False)
        with self.client.post("/gradio_api/call/ask", data=body, headers=self.headers,
                              catch_response=True) as joined:
            if joined.status_code == 429 and joined.json().get("detail") == BUSY:
                joined.success()
                return "busy", BUSY
            if joined.status_code != 200:
                joined.failure(f"join {joined.status_code}")
                return "error", f"join {joined.status_code}: {(joined.text or '')[:200]}"
            event = joined.json()["event_id"]
        with self.client.get(f"/gradio_api/call/ask/{event}", headers=self.headers, name="/gradio_api/call/ask/[id]",
                             catch_response=True) as streamed:
            text = streamed.text or ""
            kind_line, _, data_line = text.strip().partition("\n")
            if kind_line != "event: complete":
                streamed.failure(text[:200])
                return "error", text[:200]
            answer = json.loads(json.loads(data_line.removeprefix("data: "))[0])
            return classify(answer), ""


def main(url: str, users: int, per_user: int, server_pid: int, out: str) -> None:
    global RUN
    RUN = Run(json.load(sys.stdin), per_user)
    server, me = psutil.Process(server_pid), psutil.Process()
    env = Environment(user_classes=[Resident], host=url)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    deadline = time.perf_counter() + 120
    while RUN.ready < users:
        if time.perf_counter() > deadline:
            raise SystemExit(f"only {RUN.ready} of {users} residents started")
        gevent.sleep(0.02)
    server_cpu, own_cpu = sum(server.cpu_times()[:2]), sum(me.cpu_times()[:2])
    t0 = time.perf_counter()
    RUN.go.set()
    deadline = t0 + per_user * users * TIMEOUT_S
    while len(RUN.results) < users * per_user and time.perf_counter() < deadline:
        gevent.sleep(0.01)
    wall = time.perf_counter() - t0
    server_cpu, own_cpu = sum(server.cpu_times()[:2]) - server_cpu, sum(me.cpu_times()[:2]) - own_cpu
    runner.quit()
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"users": users, "per_user": per_user, "wall_s": wall, "server_cpu_s": server_cpu,
                   "generator_cpu_s": own_cpu, "results": RUN.results}, f, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
