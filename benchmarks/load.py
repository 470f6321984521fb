"""Many residents at once against the real ``vision-qa serve`` on loopback (issue 15, part 4).

    python -m benchmarks.load [--quick] [--out DIR] [--levels 1,5,20,50] [--concurrency 1,2,4]

For each queue concurrency, a server is started with the bundled corpus; at each level,
that many simulated residents (``benchmarks.residents``, a Locust run) ask questions from
``evals/datasets/dev.jsonl`` (never the test split) without pausing between them. Reported
per level: answers per second, p50/p95 latency, errors and busy refusals, and the CPU bound
(cores ÷ the server's CPU seconds per answer at one resident, measured in the same run).
Each server run ends with an overload probe: more residents at once than the queue holds,
each asking once, which must be answered or told 「混み合っています」, never left hanging.

The generator plays the reverse proxy (each resident its own X-Forwarded-For address) and
the per-minute rate limit is off: residents here ask far faster than people do. A full run
writes ``benchmarks/results/load-latest.{json,md}`` (and a timestamped JSON); ``--quick``
(levels 1 and 5, a few questions) writes to a temporary folder unless ``--out`` is given.
Nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

from benchmarks.processes import stop

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "evals" / "datasets" / "dev.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
GOAL = {"users": 20, "p95_ms": 1500.0, "bound_ratio": 0.7}
OVERLOAD_EXTRA = 30  # residents beyond what the queue and its workers hold


def log(msg: str, t0: float = time.perf_counter()) -> None:
    print(f"[load {time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def dev_questions() -> list[str]:
    """The single-turn questions of the dev split, in file order."""
    rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["question"] for r in rows if not r.get("history") and r.get("split", "dev") == "dev"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``vision-qa serve`` in a subprocess, on a free loopback port."""

    def __init__(self, data: Path, concurrency: int, log_path: Path, pythonpath: str = "", **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_QA_")}
        env.update(VISION_QA_DATA_DIR=str(data), VISION_QA_CORPUS_DIR=str(ROOT / "corpus"),
                   VISION_QA_CONFIG=str(data.parent / "absent.toml"), VISION_QA_TRUSTED_PROXIES="127.0.0.1",
                   VISION_QA_RATE_LIMIT_PER_MIN="0", VISION_QA_SERVE_CONCURRENCY=str(concurrency),
                   GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
        env.update({f"VISION_QA_{k.upper()}": v for k, v in settings.items()})
        if pythonpath:  # another checkout's code (to measure a change before → after)
            env["PYTHONPATH"] = pythonpath
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "vision_qa.cli", "serve", "--port", str(self.port)],
                                     cwd=pythonpath or ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600  # the first start ingests the corpus
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vision-qa serve exited with {self.proc.returncode}; see {log_path}")
            try:
                if httpx.get(f"{self.url}/config", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"vision-qa serve did not start in 10 minutes; see {log_path}")
            time.sleep(0.5)

    def close(self) -> None:
        stop(self.proc)
        self.log.close()


def residents(server: Server, users: int, per_user: int, questions: list[str], work: Path) -> dict:
    """One level: a Locust run of ``users`` residents, ``per_user`` questions each."""
    out = work / f"level-{users}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "benchmarks.residents", server.url, str(users), str(per_user),
           str(server.proc.pid), str(out)]
    subprocess.run(cmd, cwd=ROOT, input=json.dumps(questions, ensure_ascii=False), text=True, check=True,
                   timeout=600, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text(encoding="utf-8"))


def summarize(raw: dict) -> dict:
    results = raw["results"]
    kinds = {k: sum(1 for r in results if r["kind"] == k) for k in ("cited", "abstained", "uncited", "busy", "error")}
    answered = [r["seconds"] * 1000.0 for r in results if r["kind"] in ("cited", "abstained", "uncited")]
    answers = len(answered)
    level = {"users": raw["users"], "per_user": raw["per_user"], "asked": len(results), "answers": answers, **kinds,
             "errors_detail": sorted({r["detail"] for r in results if r["kind"] == "error"})[:5],
             "wall_s": raw["wall_s"], "answers_per_s": answers / raw["wall_s"],
             "server_cpu_s": raw["server_cpu_s"], "generator_cpu_s": raw["generator_cpu_s"]}
    if answers:
        a = np.asarray(answered)
        level.update(p50_ms=float(np.percentile(a, 50)), p95_ms=float(np.percentile(a, 95)), max_ms=float(a.max()),
                     cpu_s_per_answer=raw["server_cpu_s"] / answers,
                     generator_cpu_s_per_answer=raw["generator_cpu_s"] / answers)
    busy = [r["seconds"] * 1000.0 for r in results if r["kind"] == "busy"]
    if busy:
        level["busy_max_ms"] = float(max(busy))
    return level


def run_server(data: Path, concurrency: int, levels: list[int], per_user, questions: list[str], work: Path,
               overload: bool) -> dict:
    server = Server(data, concurrency, work / f"serve-{concurrency}.log")
    try:
        log(f"concurrency {concurrency}: serving on {server.url}")
        residents(server, 2, 2, questions, work)  # first-call paths out of the measurements
        out = {"concurrency": concurrency, "levels": []}
        for users in levels:
            level = summarize(residents(server, users, per_user(users), questions, work))
            out["levels"].append(level)
            log(f"concurrency {concurrency}, {users:>3} residents: {level['answers_per_s']:.1f} answers/s, "
                f"p50 {level.get('p50_ms', 0):.0f} ms, p95 {level.get('p95_ms', 0):.0f} ms, "
                f"errors {level['error']}, busy {level['busy']}")
        base = out["levels"][0].get("cpu_s_per_answer")
        cores = os.cpu_count() or 1
        for level in out["levels"]:
            if base:
                level["cpu_bound_per_s"] = cores / base
                level["bound_ratio"] = level["answers_per_s"] / level["cpu_bound_per_s"]
        if overload:
            from vision_qa.settings import Settings

            users = Settings.model_fields["serve_max_queue"].default + concurrency + OVERLOAD_EXTRA
            out["overload"] = summarize(residents(server, users, 1, questions, work))
            log(f"concurrency {concurrency}, overload with {users} at once: {out['overload']['answers']} answered, "
                f"{out['overload']['busy']} busy, {out['overload']['error']} errors")
        return out
    finally:
        server.close()


def goal(runs: list[dict], default: int) -> dict:
    run = next((r for r in runs if r["concurrency"] == default), runs[0])
    level = next((lv for lv in run["levels"] if lv["users"] == GOAL["users"]), None)
    if level is None or "p95_ms" not in level:
        return {"measured": False}
    met = {"no_errors": level["error"] == 0 and level["busy"] == 0 and level["uncited"] == 0,
           "p95": level["p95_ms"] <= GOAL["p95_ms"], "throughput": level.get("bound_ratio", 0) >= GOAL["bound_ratio"]}
    return {"measured": True, "concurrency": run["concurrency"], **GOAL, "p95_measured_ms": level["p95_ms"],
            "bound_ratio_measured": level.get("bound_ratio"), "met": met}


def markdown(data: dict) -> str:
    m = data["meta"]
    lines = [f"# Load test ({m['mode']}, {m['time']})", "",
             f"`vision-qa serve` on loopback, {m['cpu_count']} cores, Gradio {m['gradio']}, Locust {m['locust']}; "
             f"{m['questions']} single-turn dev questions; residents ask without pausing. "
             "CPU bound = cores ÷ the server's CPU seconds per answer at one resident (same run); "
             "ratio = answers/s ÷ that bound. "
             f"Load average of the machine (1 min) before/after: {m['loadavg_1min'][0]:.1f}/{m['loadavg_1min'][1]:.1f} "
             "(other work shares the cores).", ""]
    for run in data["runs"]:
        lines += [f"## queue concurrency {run['concurrency']}", "",
                  "| residents | answers | answers/s | p50 ms | p95 ms | errors | busy | server CPU s/answer "
                  "| generator CPU s/answer | CPU bound /s | ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for lv in run["levels"]:
            lines.append(f"| {lv['users']} | {lv['answers']} | {lv['answers_per_s']:.1f} | {lv.get('p50_ms', 0):.0f} "
                         f"| {lv.get('p95_ms', 0):.0f} | {lv['error']} | {lv['busy']} "
                         f"| {lv.get('cpu_s_per_answer', 0):.3f} | {lv.get('generator_cpu_s_per_answer', 0):.3f} "
                         f"| {lv.get('cpu_bound_per_s', 0):.1f} | {lv.get('bound_ratio', 0):.2f} |")
        if "overload" in run:
            o = run["overload"]
            lines += ["", f"Overload: {o['users']} residents at once, one question each: {o['answers']} answered "
                          f"(max {o.get('max_ms', 0):.0f} ms), {o['busy']} told 混み合っています "
                          f"(max {o.get('busy_max_ms', 0):.0f} ms), {o['error']} errors."]
        lines.append("")
    g = data["goal"]
    if g.get("measured"):
        lines.append(f"Goal ({g['users']} residents, concurrency {g['concurrency']}): no errors "
                     f"{'met' if g['met']['no_errors'] else 'NOT met'}; p95 {g['p95_measured_ms']:.0f} ms ≤ "
                     f"{g['p95_ms']:.0f} ms {'met' if g['met']['p95'] else 'NOT met'}; throughput "
                     f"{g['bound_ratio_measured']:.2f} of the CPU bound ≥ {g['bound_ratio']} "
                     f"{'met' if g['met']['throughput'] else 'NOT met'}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="levels 1 and 5, a few questions (CI)")
    parser.add_argument("--out", type=Path, help="where to write (default: benchmarks/results, a temp dir if --quick)")
    parser.add_argument("--levels", default="", help="residents at once, e.g. 1,5,20,50")
    parser.add_argument("--concurrency", default="", help="queue concurrency values to compare, e.g. 1,2,4")
    parser.add_argument("--data", type=Path, help="an index of the bundled corpus to copy instead of ingesting")
    args = parser.parse_args(argv)
    from vision_qa.settings import Settings

    default = Settings.model_fields["serve_concurrency"].default
    levels = [int(x) for x in args.levels.split(",") if x] or ([1, 5] if args.quick else [1, 5, 20, 50])
    concurrency = [int(x) for x in args.concurrency.split(",") if x] or [default]
    out = args.out or (Path(tempfile.mkdtemp(prefix="vision-qa-load-")) if args.quick else RESULTS)
    questions = dev_questions()

    def per_user(users: int) -> int:  # a few each; at least 200 answers a level in a full run
        return 3 if args.quick else max(4, math.ceil(200 / users))

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="vision-qa-load-work-"))
    try:
        data = work / "data"
        if args.data:
            shutil.copytree(args.data, data)
        runs = [run_server(data, c, levels, per_user, questions, work, overload=not args.quick) for c in concurrency]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from importlib.metadata import version

    now = datetime.now(timezone.utc)
    result = {"meta": {"time": now.isoformat(timespec="seconds"), "mode": "quick" if args.quick else "full",
                       "cpu_count": os.cpu_count(), "python": platform.python_version(), "gradio": version("gradio"),
                       "locust": version("locust"), "questions": len(questions), "levels": levels,
                       # other work on the machine: the 1-minute load average before and after the run
                       "loadavg_1min": [load_before[0], os.getloadavg()[0]],
                       "default_concurrency": default},
              "runs": runs, "goal": goal(runs, default)}
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    if not args.quick:
        (out / f"load-{now.strftime('%Y%m%dT%H%M%S')}.json").write_text(text, encoding="utf-8")
    (out / "load-latest.json").write_text(text, encoding="utf-8")
    (out / "load-latest.md").write_text(markdown(result), encoding="utf-8")
    log(f"wrote {out / 'load-latest.md'}")
    return out / "load-latest.json"


if __name__ == "__main__":
    main()
