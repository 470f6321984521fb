"""Fixtures of the robustness suite: one real assistant over the real index, the corpus
texts to check quotes against, a loopback port, and the summary printed at the end."""
from __future__ import annotations

import os
import socket

import pytest

# Before gradio is imported anywhere: no telemetry from the app or the client.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from tests.robustness.checks import LEDGER, Sources  # noqa: E402


@pytest.fixture(scope="session")
def ledger():
    return LEDGER


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lines = LEDGER.lines()
    if lines:
        terminalreporter.section("robustness: bad inputs per channel and outcome")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def real_assistant(vision_index):
    """The assistant as ``build_assistant`` wires it (extractive mode), warmed up once."""
    from assistant.build import build_assistant

    assistant = build_assistant(vision_index)
    assistant.warm_up()
    return assistant


@pytest.fixture(scope="session")
def sources(vision_index) -> Sources:
    return Sources(vision_index.corpus_dir)


@pytest.fixture(scope="session")
def free_port():
    def port() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return port
