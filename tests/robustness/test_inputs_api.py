"""Bad inputs through the Python API, ``ask`` and ``draft`` of the real assistant.

Each outcome is a clear error (InputError with a Japanese message) or a normal answer
whose quotes are verbatim in the source, that leaks no prompt text and that the UI renders
as text only. Generated inputs are derandomized, so every run tries the same ones.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from ingest.normalize import strip_invisible
from tests.robustness import inputs
from tests.robustness.checks import (
    check_answer, check_draft, check_rendered_answer, check_rendered_draft, check_same, record,
)

pytestmark = pytest.mark.slow


def generated(n: int):
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


def expected_error(text: str, limit: int) -> str | None:
    """The InputError message for ``text``, or None when it must be answered."""
    cleaned = inputs.without_surrogates(strip_invisible(text)).strip()
    if not cleaned:
        return inputs.EMPTY
    return inputs.too_long(len(cleaned), limit) if len(cleaned) > limit else None


def ask_checked(assistant, sources, text: str, channel: str = "api.ask"):
    kind, result = record(channel, assistant.ask, text)
    message = expected_error(text, assistant.cfg.max_question_chars)
    assert (kind == "input-error") == (message is not None)
    if kind == "input-error":
        assert result == message
    else:
        assert check_answer(result.to_dict(), sources, text) == kind
        check_rendered_answer(result)
    return kind, result


def draft_checked(assistant, sources, text: str, channel: str = "api.draft"):
    kind, result = record(channel, assistant.draft, text)
    message = expected_error(text, assistant.cfg.max_inquiry_chars)
    assert (kind == "input-error") == (message is not None)
    if kind == "input-error":
        assert result == message
    else:
        check_draft(result, sources, text)
        check_rendered_draft(result)
    return kind, result


@pytest.mark.parametrize("case", inputs.params(inputs.CURATED))
def test_ask_curated(case: inputs.Case, real_assistant, sources) -> None:
    kind, result = ask_checked(real_assistant, sources, case.text)
    if case.expect:
        assert kind == case.expect
    if case.same_as:
        check_same(result.to_dict(), real_assistant.ask(case.same_as).to_dict())
    if kind == "refused":
        assert result.text == (inputs.REFUSE_EN if result.language == "en" else inputs.REFUSE_JA)


@pytest.mark.parametrize("case", inputs.params(inputs.DRAFT_CASES))
def test_draft_curated(case: inputs.Case, real_assistant, sources) -> None:
    # An inquiry may be five times longer than a question: "2001-chars" is a fine inquiry.
    kind, _ = draft_checked(real_assistant, sources, case.text)
    if case.expect == "refused":
        assert kind == "refused"


@given(text=inputs.any_text)
@generated(60)
def test_ask_any_unicode(text: str, real_assistant, sources) -> None:
    ask_checked(real_assistant, sources, text)


@given(text=inputs.mixed)
@generated(60)
def test_ask_payload_mixtures(text: str, real_assistant, sources) -> None:
    ask_checked(real_assistant, sources, text)


@given(text=inputs.blank)
@generated(25)
def test_nothing_visible_is_an_empty_question(text: str, real_assistant, sources) -> None:
    assert ask_checked(real_assistant, sources, text) == ("input-error", inputs.EMPTY)
    assert draft_checked(real_assistant, sources, text) == ("input-error", inputs.EMPTY)


@given(text=inputs.smuggled())
@generated(20)
def test_invisible_characters_change_nothing(text: str, real_assistant, sources) -> None:
    kind, answer = ask_checked(real_assistant, sources, text)
    assert kind == "answered"
    check_same(answer.to_dict(), real_assistant.ask(inputs.DEER_Q).to_dict())


@given(text=inputs.mixed)
@generated(25)
def test_draft_payload_mixtures(text: str, real_assistant, sources) -> None:
    draft_checked(real_assistant, sources, text)
