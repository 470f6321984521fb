"""The assistant with a scripted chat model: guarded LLM answers, fallback, LLM rewriting."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from assistant.build import store_spec
from assistant.core import Assistant, AssistantConfig
from assistant.guard import MARKER, FidelityGuard
from assistant.llm import LlmAnswerer, LlmRewriter
from assistant.types import Answer, Message
from ingest.embedders import make_embedder
from ingest.tokenize import JapaneseTokenizer
from vision_qa.settings import Settings

QUESTION = "エゾシカの取り組みは？"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
D1_LABEL = "主な施策の方向１（農林水産業・地域産業）"
EXTRACTIVE = f"ビジョンの「{D1_LABEL}」に、次の記載があります。\n・{DEER} [1]"
FAITHFUL = "ビジョンでは、捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進が挙げられています[1]。"
INVENTED = "また、2030年までに鹿肉の加工施設を10か所整備します[1]。"
HISTORY: list[Message] = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": EXTRACTIVE}]


class RefusingChatModel(FakeListChatModel):
    """A chat model whose server refuses the connection, streaming or not."""

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise ConnectionRefusedError(111, "Connection refused")

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        raise ConnectionRefusedError(111, "Connection refused")


class EmptyStreamChatModel(FakeListChatModel):
    """A server that answers with one empty delta, as some do when the model produced nothing."""

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=AIMessageChunk(content=""))


@pytest.fixture(scope="module")
def base(vision_index: Settings) -> Assistant:
    """Wired as ``build_assistant`` does, with no chat model yet; tests plug one in."""
    s = vision_index
    config = AssistantConfig(retrieve_k=s.retrieve_k, top_k=s.top_k, rrf_k=s.rrf_k, reranker_model=s.reranker_model,
                             max_question_chars=s.max_question_chars, max_inquiry_chars=s.max_inquiry_chars,
                             guard_mode=s.guard_mode, llm_model="scripted")
    return Assistant(store_spec(s), make_embedder(s.embedder_spec()), config, tokenizer=JapaneseTokenizer())


@pytest.fixture
def with_llm(base: Assistant):
    """Plugs a chat model into the shared assistant (as its answerer and, optionally, rewriter)."""

    def plug(chat_model, rewriter_model=None) -> Assistant:
        base.llm = LlmAnswerer(chat_model, FidelityGuard(base.tokenizer, mode="mark"))
        base.llm_rewriter = LlmRewriter(rewriter_model) if rewriter_model is not None else None
        return base

    yield plug
    base.llm = base.llm_rewriter = None


def _run(assistant: Assistant, question: str, history: list[Message] | None = None) -> Answer:
    answer = assistant.ask(question, history)
    assert isinstance(answer, Answer)
    return answer


def test_faithful_answer_is_an_llm_answer_with_its_citation(with_llm) -> None:
    assistant = with_llm(FakeListChatModel(responses=[FAITHFUL]))
    answer = _run(assistant, QUESTION)
    assert (answer.mode, answer.coverage, answer.text) == ("llm", "direct", FAITHFUL)
    assert answer.unsupported == [] and answer.notes[:-1] == []
    assert [(c.n, c.quote) for c in answer.citations] == [(1, DEER)]
    assert answer.citations[0].chunk_id == answer.retrieved[0].chunk.id
    assert {"retrieve", "answer", "total"} <= set(answer.timings_ms)


def test_invented_sentence_is_flagged_and_marked(with_llm) -> None:
    assistant = with_llm(FakeListChatModel(responses=[FAITHFUL + INVENTED]))
    answer = _run(assistant, QUESTION)
    assert (answer.mode, answer.coverage) == ("llm", "direct")
    assert answer.unsupported == [INVENTED]
    assert answer.text == FAITHFUL + INVENTED + MARKER


def test_an_llm_that_refuses_what_the_passages_state_gives_way_to_the_quotes(with_llm) -> None:
    assistant = with_llm(FakeListChatModel(responses=["ビジョンには記載がありません"]))
    answer = _run(assistant, QUESTION)
    assert (answer.mode, answer.coverage, answer.text) == ("extractive-fallback", "direct", EXTRACTIVE)


def test_unreachable_llm_falls_back_to_the_extractive_answer(with_llm) -> None:
    assistant = with_llm(RefusingChatModel(responses=["never used"]))
    answer = _run(assistant, QUESTION)
    assert (answer.mode, answer.coverage, answer.text) == ("extractive-fallback", "direct", EXTRACTIVE)
    assert [(c.n, c.quote) for c in answer.citations] == [(1, DEER)]
    assert answer.notes[0] == ("LLM unavailable, extractive answer instead: "
                               "言語モデルから回答を得られませんでした（ConnectionRefusedError: [Errno 111] Connection refused）")


def test_questions_the_plan_cannot_answer_never_reach_the_llm(with_llm) -> None:
    model = FakeListChatModel(responses=[FAITHFUL])
    assistant = with_llm(model)
    answer = _run(assistant, "札幌市の観光予算はいくら？")
    assert answer.mode == "extractive" and answer.coverage != "direct"
    assert model.i == 0  # the scripted response was not consumed


def test_structure_questions_never_reach_the_llm(with_llm) -> None:
    model = FakeListChatModel(responses=[FAITHFUL])
    answer = _run(with_llm(model), "ゼロカーボンに関する施策を全部教えて")
    assert (answer.mode, len(answer.citations), model.i) == ("structure", 5, 0)


def test_llm_rewriter_rewrites_follow_ups(with_llm) -> None:
    assistant = with_llm(FakeListChatModel(responses=[FAITHFUL]),
                         rewriter_model=FakeListChatModel(responses=["検索クエリ：エゾシカ 有効活用"]))
    answer = _run(assistant, "それについてもっと詳しく", HISTORY)
    assert answer.rewritten_query == "エゾシカ 有効活用"
    assert answer.mode == "llm"


def test_failing_llm_rewriter_falls_back_to_the_rules(with_llm) -> None:
    assistant = with_llm(FakeListChatModel(responses=[FAITHFUL]), rewriter_model=RefusingChatModel(responses=["x"]))
    answer = _run(assistant, "それについてもっと詳しく", HISTORY)
    assert answer.rewritten_query == "エゾシカについて、それについてもっと詳しく"


def test_llm_rewriter_is_not_asked_about_standalone_questions(with_llm) -> None:
    rewriter = FakeListChatModel(responses=["使われない"])
    answer = _run(with_llm(FakeListChatModel(responses=[FAITHFUL]), rewriter_model=rewriter), QUESTION, HISTORY)
    assert (answer.rewritten_query, rewriter.i) == (QUESTION, 0)


def test_reasoning_block_is_not_shown(with_llm) -> None:
    answer = _run(with_llm(FakeListChatModel(responses=["<think>資料を読むと…</think>\n" + FAITHFUL])), QUESTION)
    assert answer.text == FAITHFUL


def test_empty_llm_answer_falls_back(with_llm) -> None:
    answer = _run(with_llm(EmptyStreamChatModel(responses=["x"])), QUESTION)
    assert (answer.mode, answer.text, answer.coverage) == ("extractive-fallback", EXTRACTIVE, "direct")
    assert answer.notes[0] == "LLM unavailable, extractive answer instead: 言語モデルの応答が空でした"


def test_uncited_llm_answer_falls_back(with_llm) -> None:
    answer = _run(with_llm(FakeListChatModel(responses=["鹿肉の取り組みがあります。"])), QUESTION)
    assert (answer.mode, answer.text) == ("extractive-fallback", EXTRACTIVE)
    assert answer.unsupported == ["鹿肉の取り組みがあります。"]
