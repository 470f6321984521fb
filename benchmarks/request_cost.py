"""The cost of one hostile request to the real ``vision-qa serve`` (issue 13, H2 and H1).

    python -m benchmarks.request_cost [--out DIR] [--server-pythonpath CHECKOUT]

Each request is sent alone to an idle server; its cost is the server process's CPU seconds
and wall time around it, and the server's resident memory after it. Random katakana words
(a new seed each time, so no cache helps) stand for text the index has never seen. Then
the H1 flood: 100 session hashes from one address, each asking a 2,000-character question,
and another address asking a normal one: what it gets, and how long it waits.
``--server-pythonpath`` runs the server from another checkout, to measure before → after.
Times are reported, never asserted.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psutil

from benchmarks.load import Server, log

PASSWORD = "bench-staff-password"
KATAKANA = [chr(c) for c in range(0x30A2, 0x30F3)]
NORMAL = "鹿肉って何か取り組みあるの？"


def words(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append("".join(rng.choice(KATAKANA) for _ in range(rng.randint(3, 6))))
    return " ".join(out)[:chars]


def call(url: str, api: str, data: list, timeout: float = 900.0, client: httpx.Client | None = None,
         **headers: str) -> tuple[int, str]:
    """A named-API call: (HTTP status of the join, the SSE reply or the refusal)."""
    http = client or httpx.Client(timeout=timeout)
    body = json.dumps({"data": data}, ensure_ascii=False).encode("utf-8")
    try:
        joined = http.post(f"{url}/gradio_api/call/{api}", content=body,
                           headers={"content-type": "application/json", **headers})
    except httpx.HTTPError as exc:  # e.g. the server answered 413 and closed while the body was still going
        return -1, repr(exc)[:200]
    if joined.status_code != 200:
        return joined.status_code, joined.text[:200]
    reply = http.get(f"{url}/gradio_api/call/{api}/{joined.json()['event_id']}", headers=headers)
    events = [line for line in reply.text.splitlines() if line.startswith("event:") and "heartbeat" not in line]
    return 200, events[-1] if events else reply.text[:200]


def measured(server: Server, send) -> dict:
    proc = psutil.Process(server.proc.pid)
    cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
    status, outcome = send()
    time.sleep(0.2)  # the server's own after-work (logging, cleanup) counts too
    return {"cpu_s": sum(proc.cpu_times()[:2]) - cpu0, "wall_s": time.perf_counter() - t0 - 0.2,
            "status": status, "outcome": outcome, "rss_mb": proc.memory_info().rss / 1e6}


def cases(url: str) -> dict:
    deep = [{"role": "user", "content": f"{i}番目の質問"} for i in range(200)]
    inquiry = "\n".join(f"{words(700, 100 + i)}と、{words(100, 200 + i)}について教えてください。" for i in range(12))
    return {
        "normal question": lambda s: call(url, "ask", [NORMAL, "[]"]),
        "2,000-character question of random words": lambda s: call(url, "ask", [words(2000, s), "[]"]),
        "follow-up after a 6,000-character turn": lambda s: call(url, "ask", ["それは？", json.dumps(
            [{"role": "user", "content": words(6000, s)}, {"role": "assistant", "content": "…"}], ensure_ascii=False)]),
        "follow-up after 200 turns": lambda s: call(url, "ask", ["それは？", json.dumps(
            deep + [{"role": "user", "content": words(2000, s)}], ensure_ascii=False)]),
        "10,000-character staff inquiry (12 questions)": lambda s: call(url, "draft", [
            inquiry.replace("ア", "イ", s % 3), PASSWORD]),
        "100 MB history": lambda s: call(url, "ask", [NORMAL, json.dumps(
            [{"role": "user", "content": "a" * 100_000_000}])]),
    }


def flood(server: Server) -> dict:
    """H1: 100 session hashes from 127.0.0.1, then a normal question from 127.0.0.2."""
    url = server.url
    with httpx.Client(timeout=30) as http:
        fn = next(d["id"] for d in http.get(f"{url}/config").json()["dependencies"] if d.get("api_name") == "ask")
        statuses = []
        for i in range(100):
            r = http.post(f"{url}/gradio_api/queue/join", json={
                "data": [words(2000, 1000 + i), "[]"], "fn_index": fn, "session_hash": uuid.uuid4().hex[:11],
                "event_data": None, "trigger_id": None})
            statuses.append(r.status_code)
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=900)
    t0 = time.perf_counter()
    status, outcome = call(url, "ask", [NORMAL, "[]"], client=other)
    waited = time.perf_counter() - t0
    return {"first_client_admitted": statuses.count(200), "first_client_refused": 100 - statuses.count(200),
            "refusal_statuses": sorted(set(statuses) - {200}), "other_client_status": status,
            "other_client_outcome": outcome, "other_client_wait_s": waited}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--server-pythonpath", default="")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each request (new random words each)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vision-qa-cost-"))
    results: dict = {"server_pythonpath": args.server_pythonpath, "requests": {}}
    server = Server(work / "data", 4, work / "serve.log", args.server_pythonpath, staff_password=PASSWORD,
                    trusted_proxies="")
    try:
        call(server.url, "ask", ["準備", "[]"])
        for name, send in cases(server.url).items():
            runs = [measured(server, lambda: send(seed)) for seed in range(args.repeat if "100 MB" not in name else 1)]
            worst = max(runs, key=lambda r: r["cpu_s"])
            results["requests"][name] = {"runs": runs, "worst_cpu_s": worst["cpu_s"], "worst_wall_s": worst["wall_s"]}
            log(f"{name}: worst {worst['cpu_s']:.2f} CPU s, {worst['wall_s']:.2f} s, status {worst['status']} "
                f"{worst['outcome'][:60]!r}, RSS {worst['rss_mb']:.0f} MB")
        results["peak_rss_mb"] = _peak_rss_mb(server.proc.pid)
    finally:
        server.close()
    server = Server(work / "data", 4, work / "serve-flood.log", args.server_pythonpath, trusted_proxies="",
                    rate_limit_per_min="20")
    try:
        results["flood"] = flood(server)
        log(f"flood: {results['flood']}")
    finally:
        server.close()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "request-cost.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return results


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


if __name__ == "__main__":
    main()
