"""Wiring: settings → the whole pipeline, on one screen."""
from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.core import Assistant, AssistantConfig
from ingest.embedders import make_embedder
from ingest.indexer import Indexer
from ingest.store import StoreSpec
from ingest.tokenize import JapaneseTokenizer

if TYPE_CHECKING:
    from vision_qa.settings import Settings


def store_spec(settings: "Settings") -> StoreSpec:
    return StoreSpec(settings.data_dir, settings.chroma_host, settings.chroma_port)


def build_indexer(settings: "Settings", embedder=None, tokenizer: JapaneseTokenizer | None = None) -> Indexer:
    return Indexer(
        store=store_spec(settings), embedder=embedder or make_embedder(settings.embedder_spec()),
        corpus_dir=settings.corpus_dir, max_file_bytes=int(settings.max_file_mb * 1_000_000), tokenizer=tokenizer,
    )


def build_assistant(settings: "Settings", retrieval_mode: str = "hybrid", embedder=None) -> Assistant:
    """Embedder → index reader → hybrid retriever (→ reranker) → extractive or LLM answers."""
    embedder = embedder or make_embedder(settings.embedder_spec())
    config = AssistantConfig(
        retrieve_k=settings.retrieve_k, top_k=settings.top_k, rrf_k=settings.rrf_k, retrieval_mode=retrieval_mode,
        reranker_model=settings.reranker_model, max_question_chars=settings.max_question_chars,
        max_inquiry_chars=settings.max_inquiry_chars, guard_mode=settings.guard_mode, llm_model=settings.llm_model,
        log_questions=settings.log_inquiries,
    )
    tokenizer = JapaneseTokenizer()
    llm = rewriter = None
    if settings.llm_enabled:
        from assistant.guard import FidelityGuard
        from assistant.llm import LlmAnswerer, LlmRewriter, make_chat_model

        chat = make_chat_model(settings.llm_base_url, settings.llm_model, settings.llm_api_key,
                               settings.llm_timeout_s, settings.llm_temperature)
        llm = LlmAnswerer(chat, FidelityGuard(tokenizer, mode=settings.guard_mode))
        rewriter = LlmRewriter(chat)
    return Assistant(store_spec(settings), embedder, config, tokenizer=tokenizer, llm=llm, rewriter=rewriter)
