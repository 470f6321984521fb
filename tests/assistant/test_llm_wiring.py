"""The assistant with a scripted chat model: guarded LLM answers, the fallback and what it shows,
checked LLM rewriting, LLM reply drafts."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from assistant.build import store_spec
from assistant.core import Assistant, AssistantConfig
from assistant import prompts
from assistant.guard import MARKER, FidelityGuard
from assistant.llm import LlmAnswerer, LlmRewriter
from assistant.query import TermExtractor
from assistant.types import Answer, Message
from vision_qa.cli import format_answer, format_draft
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
WITHHELD = prompts.render("answer", "withheld_ja")
UNAVAILABLE = prompts.render("answer", "unavailable_ja")


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

    def plug(chat_model, rewriter_model=None, mode="mark") -> Assistant:
        base.llm = LlmAnswerer(chat_model, FidelityGuard(base.tokenizer, mode=mode))
        base.llm_rewriter = LlmRewriter(rewriter_model, TermExtractor(base.tokenizer)) if rewriter_model else None
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
    assert answer.unsupported == [] and answer.rejected == [] and answer.notes[:-1] == []
    assert [(c.n, c.quote) for c in answer.citations] == [(1, DEER)]
    assert answer.citations[0].chunk_id == answer.retrieved[0].chunk.id
    assert {"retrieve", "answer", "total"} <= set(answer.timings_ms)


def test_invented_sentence_is_marked_in_mark_mode(with_llm) -> None:
    answer = _run(with_llm(FakeListChatModel(responses=[FAITHFUL + INVENTED])), QUESTION)
    assert (answer.mode, answer.coverage, answer.text) == ("llm", "direct", FAITHFUL + INVENTED + MARKER)
    assert (answer.unsupported, answer.rejected) == ([INVENTED], [])


def test_invented_sentence_is_gone_in_remove_mode(with_llm) -> None:
    answer = _run(with_llm(FakeListChatModel(responses=[FAITHFUL + INVENTED]), mode="remove"), QUESTION)
    assert (answer.mode, answer.text, answer.unsupported, answer.rejected) == ("llm", FAITHFUL, [], [INVENTED])
    assert answer.to_dict()["rejected_llm_sentences"] == [INVENTED]


@pytest.mark.parametrize("mode", ["mark", "remove"])
def test_an_all_fabricated_answer_falls_back_and_shows_none_of_it(with_llm, mode: str) -> None:
    fabricated = "鹿肉の加工施設を整備します[1]。\nまた、2030年までに鹿肉の加工施設を10か所整備します[1]。"
    answer = _run(with_llm(FakeListChatModel(responses=[fabricated]), mode=mode), QUESTION)
    assert (answer.mode, answer.coverage, answer.text) == ("extractive-fallback", "direct", f"{EXTRACTIVE}\n{WITHHELD}")
    assert answer.unsupported == []
    assert answer.rejected == ["鹿肉の加工施設を整備します[1]。", INVENTED]
    assert answer.notes[0] == "the LLM answer had no supported sentence; extractive answer instead"
    printed = format_answer(answer)
    assert printed == f"{EXTRACTIVE}\n{WITHHELD}\n\n出典：\n[1] 釧路・根室連携地域「地域づくり推進ビジョン」 › " \
        "連携地域の主な施策の方向（今後５年程度） › １ 農林水産業をはじめとする地域産業の振興"
    assert "鹿肉" not in printed


def test_an_echo_of_the_prompt_is_never_shown(with_llm) -> None:
    system = prompts.render("answer", "system")
    answer = _run(with_llm(FakeListChatModel(responses=[f"{system}\n<passages>\n{FAITHFUL}"])), QUESTION)
    assert (answer.mode, answer.text, answer.unsupported) == ("llm", FAITHFUL, [])
    # Named in the debugging list, never quoted: the prompt's text is shown to nobody.
    assert answer.rejected[:2] == ["［プロンプトの反復（60文字）］", "［プロンプトの反復（7文字）］"]
    assert len(answer.rejected) == 21 and not any("守ること" in s for s in answer.rejected)


def test_an_llm_that_refuses_what_the_passages_state_gives_way_to_the_quotes(with_llm) -> None:
    answer = _run(with_llm(FakeListChatModel(responses=["ビジョンには記載がありません"])), QUESTION)
    assert (answer.mode, answer.coverage, answer.text) == ("extractive-fallback", "direct", f"{EXTRACTIVE}\n{WITHHELD}")


def test_unreachable_llm_falls_back_to_the_extractive_answer(with_llm) -> None:
    answer = _run(with_llm(RefusingChatModel(responses=["never used"])), QUESTION)
    assert (answer.mode, answer.coverage, answer.text) == ("extractive-fallback", "direct", f"{EXTRACTIVE}\n{UNAVAILABLE}")
    assert [(c.n, c.quote) for c in answer.citations] == [(1, DEER)]
    assert answer.notes[0] == ("LLM unavailable, extractive answer instead: "
                               "言語モデルから回答を得られませんでした（ConnectionRefusedError: [Errno 111] Connection refused）")


def test_an_english_fallback_says_so_in_english(with_llm) -> None:
    answer = _run(with_llm(FakeListChatModel(responses=["エゾシカ"])), "What does the plan say about tourism?")
    assert answer.mode == "extractive-fallback" and answer.language == "en"
    assert answer.text.endswith("\n" + prompts.render("answer", "withheld_en"))


def test_questions_the_plan_cannot_answer_never_reach_the_llm(with_llm) -> None:
    model = FakeListChatModel(responses=[FAITHFUL])
    answer = _run(with_llm(model), "札幌市の観光予算はいくら？")
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
    assert (answer.rewritten_query, answer.mode) == ("エゾシカ 有効活用", "llm")


@pytest.mark.parametrize("reply", ["<question>", "それの予算は？\n\n## 1. データです", "予算 " * 60])
def test_an_implausible_llm_rewrite_gives_way_to_the_rules(with_llm, reply: str) -> None:
    # The replies SmolLM2 gave (shared transcripts) and a runaway repetition.
    assistant = with_llm(FakeListChatModel(responses=[FAITHFUL]), rewriter_model=FakeListChatModel(responses=[reply]))
    answer = _run(assistant, "それの予算は？", HISTORY)
    assert answer.rewritten_query == "エゾシカについて、それの予算は？"
    assert (answer.mode, answer.coverage) == ("extractive", "related")


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
    assert (answer.mode, answer.text, answer.coverage) == ("extractive-fallback", f"{EXTRACTIVE}\n{UNAVAILABLE}", "direct")
    assert answer.notes[0] == "LLM unavailable, extractive answer instead: 言語モデルの応答が空でした"


def test_uncited_llm_answer_falls_back(with_llm) -> None:
    answer = _run(with_llm(FakeListChatModel(responses=["鹿肉の取り組みがあります。"])), QUESTION)
    assert (answer.mode, answer.text) == ("extractive-fallback", f"{EXTRACTIVE}\n{WITHHELD}")
    assert (answer.unsupported, answer.rejected) == ([], ["鹿肉の取り組みがあります。"])


# -- reply drafts -----------------------------------------------------------------------------

INQUIRY = "お世話になっております。エゾシカの活用について教えてください。"
OPENING = prompts.render("draft", "opening")
CLOSING = prompts.render("draft", "closing")
SOURCES = ("【出典】\n[1] 釧路・根室連携地域「地域づくり推進ビジョン」 › 主な施策の方向１（農林水産業・地域産業）")


def test_a_supported_llm_draft_gets_the_fixed_opening_closing_and_sources(with_llm) -> None:
    body = ("【エゾシカの活用について】\n"
            "ビジョンでは「捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進」が掲げられております[1]。\n"
            "加工施設の建設費として3億円を計上しております[1]。\n"
            "【予算について】\n"
            "予算は担当課で検討中です。")
    draft = with_llm(FakeListChatModel(responses=[body])).draft(INQUIRY)
    kept = body.split("\n")[:2]
    assert draft.mode == "llm"
    assert draft.text == "\n\n".join([OPENING, "\n".join(kept), CLOSING, SOURCES])
    assert draft.rejected == ["加工施設の建設費として3億円を計上しております[1]。", "予算は担当課で検討中です。"]
    printed = format_draft(draft)
    assert "3億円" not in printed and "担当課で検討中" not in printed
    assert printed.endswith("※生成した下書きのうち、出典で確認できない2文を除きました（--json の rejected_llm_sentences で確認できます）。")


def test_an_unsupported_llm_draft_leaves_the_extractive_one_with_a_notice(with_llm) -> None:
    junk = "<passages>\n1. ディアルコミックのディアルコミックは、ディアルコミック"  # SmolLM2's draft (shared transcripts)
    assistant = with_llm(FakeListChatModel(responses=[junk]))
    draft = assistant.draft(INQUIRY)
    assistant.llm = None
    assert draft.text == assistant.draft(INQUIRY).text  # the send-ready extractive reply, nothing added
    assert draft.mode == "extractive-fallback"
    assert draft.notice == prompts.render("answer", "draft_withheld")
    assert draft.rejected == ["［プロンプトの反復（10文字）］", "ディアルコミックのディアルコミックは、ディアルコミック"]
    printed = format_draft(draft)
    assert "ディアルコミック" not in printed and printed.endswith("※" + draft.notice)
    assert draft.to_dict()["rejected_llm_sentences"] == draft.rejected


def test_rejected_sentences_go_to_the_log(with_llm, tmp_path) -> None:
    import json
    import logging

    from assistant import logs

    path = tmp_path / "log.jsonl"
    logs.configure(path)
    try:
        _run(with_llm(FakeListChatModel(responses=["## 守ること\n鹿肉の取り組みがあります。"])), QUESTION)
    finally:
        for handler in list(logs.LOGGER.handlers):
            logs.LOGGER.removeHandler(handler)
            handler.close()
        logs.LOGGER.setLevel(logging.NOTSET)
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [e["event"] for e in events] == ["llm_rejected", "answer"]
    assert events[0]["withheld"] is True and events[0]["sentences"] == [
        {"reason": "echo", "text": "［プロンプトの反復（7文字）］"}, {"reason": "no-citation", "text": "鹿肉の取り組みがあります。"}]
    assert (events[1]["mode"], events[1]["rejected"]) == ("extractive-fallback", 2)
