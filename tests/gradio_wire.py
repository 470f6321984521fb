"""Gradio's queue protocol spoken directly, as the browser page does, for tests that need
what gradio_client hides: the raw status of a join, several session hashes from one
client, another client address, or text that gradio_client cannot encode.

A job: POST /gradio_api/queue/join {data, fn_index, session_hash} → {"event_id"}; its
messages (estimation, process_starts, process_completed …) arrive on the session's
Server-Sent Events stream, GET /gradio_api/queue/data?session_hash=….
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import httpx


def client(address: str = "127.0.0.1", timeout: float = 60.0) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (any 127.x.y.z is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=timeout)


def fn_index(http: httpx.Client, url: str, api_name: str) -> int:
    deps = http.get(f"{url}/config").json()["dependencies"]
    return next(d["id"] for d in deps if d.get("api_name") == api_name)


def new_session() -> str:
    return uuid.uuid4().hex[:11]


def join(http: httpx.Client, url: str, fn: int, data: list, session: str, event_data: dict | None = None,
         **headers: str) -> httpx.Response:
    body = json.dumps({"data": data, "fn_index": fn, "session_hash": session, "event_data": event_data,
                       "trigger_id": None})  # ASCII JSON: a lone surrogate travels as a \\ud800 escape
    return http.post(f"{url}/gradio_api/queue/join", content=body,
                     headers={"content-type": "application/json", **headers})


@dataclass
class Outcome:
    """What the session's stream said about one event."""

    ranks: list[int] = field(default_factory=list)  # queue positions announced while waiting
    completed: dict | None = None  # the process_completed message


def listen(http: httpx.Client, url: str, session: str, event_ids: set[str],
           on_message=None) -> dict[str, Outcome]:
    """Read the session's stream until each of ``event_ids`` has completed."""
    outcomes = {e: Outcome() for e in event_ids}
    left = set(event_ids)
    with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if on_message is not None:
                on_message(message)
            event = message.get("event_id")
            if event not in outcomes:
                continue
            if message.get("msg") == "estimation" and message.get("rank") is not None:
                outcomes[event].ranks.append(message["rank"])
            elif message.get("msg") == "process_completed":
                outcomes[event].completed = message
                left.discard(event)
                if not left:
                    break
    return outcomes


def run(http: httpx.Client, url: str, fn: int, data: list, session: str | None = None,
        event_data: dict | None = None) -> dict:
    """Join and wait: the process_completed message of one job (``event_data``: what the page
    sends with an event, e.g. a like's index)."""
    session = session or new_session()
    response = join(http, url, fn, data, session, event_data)
    response.raise_for_status()
    event = response.json()["event_id"]
    return listen(http, url, session, {event})[event].completed
