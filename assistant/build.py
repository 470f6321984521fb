"""Wiring: settings → the whole pipeline, on one screen."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from assistant.core import Assistant, AssistantConfig
from assistant.relevance import Calibration
from ingest.embedders import make_embedder
from ingest.indexer import Indexer
from ingest.loaders import ParseLimits
from ingest.sources import SourcesError, load_sources
from ingest.store import StoreSpec
from ingest.tokenize import JapaneseTokenizer

if TYPE_CHECKING:
    from vision_qa.settings import Settings


def store_spec(settings: "Settings") -> StoreSpec:
    return StoreSpec(settings.data_dir, settings.chroma_host, settings.chroma_port)


def build_indexer(settings: "Settings", embedder=None, tokenizer: JapaneseTokenizer | None = None) -> Indexer:
    limits = ParseLimits(memory_mb=settings.parse_memory_mb, seconds=settings.parse_seconds,
                         unpacked_mb=settings.max_unpacked_mb, pages=settings.max_pdf_pages)
    return Indexer(
        store=store_spec(settings), embedder=embedder or make_embedder(settings.embedder_spec()),
        corpus_dir=settings.corpus_dir, max_file_bytes=int(settings.max_file_mb * 1_000_000), tokenizer=tokenizer,
        limits=limits,
    )


def issuers(corpus_dir) -> dict[str, str]:
    """source → issuer from the corpus's sources.toml (an unreadable manifest names none)."""
    try:
        return {s.file: s.issuer for s in load_sources(Path(corpus_dir)).values() if s.issuer}
    except SourcesError:
        return {}


def build_assistant(settings: "Settings", retrieval_mode: str = "hybrid", embedder=None,
                    calibration: Calibration | None = None) -> Assistant:
    """Embedder → index reader → hybrid retriever (→ reranker) → graded coverage →
    extractive or LLM answers."""
    embedder = embedder or make_embedder(settings.embedder_spec())
    config = AssistantConfig(
        retrieve_k=settings.retrieve_k, top_k=settings.top_k, rrf_k=settings.rrf_k, retrieval_mode=retrieval_mode,
        reranker_model=settings.reranker_model, max_question_chars=settings.max_question_chars,
        max_inquiry_chars=settings.max_inquiry_chars, guard_mode=settings.guard_mode, llm_model=settings.llm_model,
        log_questions=settings.log_inquiries, contact=settings.contact_text,
    )
    if calibration is None and settings.calibration_file:
        calibration = Calibration.load(Path(settings.calibration_file))
    tokenizer = JapaneseTokenizer()
    llm = rewriter = None
    if settings.llm_enabled:
        from assistant.guard import FidelityGuard
        from assistant.llm import Limits, LlmAnswerer, LlmRewriter, make_chat_model
        from assistant.query import TermExtractor

        chat = make_chat_model(settings.llm_base_url, settings.llm_model, settings.llm_api_key,
                               settings.llm_timeout_s, settings.llm_temperature)
        limits = Limits(answer_tokens=settings.llm_answer_max_tokens, draft_tokens=settings.llm_draft_max_tokens,
                        rewrite_tokens=settings.llm_rewrite_max_tokens, budget_s=settings.llm_budget_s)
        llm = LlmAnswerer(chat, FidelityGuard(tokenizer, mode=settings.guard_mode), limits)
        rewriter = LlmRewriter(chat, TermExtractor(tokenizer), limits)
    return Assistant(store_spec(settings), embedder, config, tokenizer=tokenizer, calibration=calibration,
                     issuers=issuers(settings.corpus_dir), llm=llm, rewriter=rewriter)


def run_ingest(settings, paths: list[Path] | None = None, rebuild: bool = False, quiet: bool = False):
    """Ingest with a progress bar on stderr; returns the report."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    indexer = build_indexer(settings)
    console = Console(stderr=True)
    labels = {"read": "ファイル読込", "embed": "埋め込み", "terms": "語句ベクトル", "bm25": "BM25索引"}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=quiet, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        return indexer.run(paths, rebuild=rebuild, progress=progress)
