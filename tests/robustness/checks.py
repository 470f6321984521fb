"""What every outcome must satisfy, whatever the input, and the tally the summary prints."""
from __future__ import annotations

import json
import re
import threading
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from assistant import prompts
from assistant.types import Answer, Citation, Draft
from ingest.loaders import load_file
from ingest.normalize import squash_whitespace
from ui import render
from ui.furigana import Furigana

FURIGANA = Furigana()  # ruby on: every reading goes through the same escaping

MODES = {"extractive", "llm", "extractive-fallback", "structure", "refused"}
# answered: quoted the plan (coverage direct or related); abstained: the plan does not cover it
# (coverage none); busy: refused by the server's gate (a clear 混み合っています / too large /
# not offered); recovered: damage to the index reported with the command that fixes it, and
# fixed by it; crash: a known bug (xfail).
KINDS = ("answered", "abstained", "refused", "input-error", "busy", "recovered", "crash")


def prompt_lines() -> list[str]:
    """Every line of the system prompts that is long enough to be recognisable (≥ 15 chars)."""
    texts = [prompts.load("answer")["system"], prompts.load("answer")["draft_system"], prompts.load("rewrite")["system"]]
    return sorted({ln.strip() for t in texts for ln in t.splitlines() if len(ln.strip()) >= 15})


PROMPT_LINES = prompt_lines()


def leaked(text: str, allowed: str = "") -> list[str]:
    """Prompt lines found in ``text`` (lines that the user typed themselves do not count)."""
    return [ln for ln in PROMPT_LINES if ln in text and ln not in allowed]


# -- the tally ------------------------------------------------------------------------------------

class Ledger:
    """Outcomes by channel, and data lost, for the summary at the end of the session."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = {}
        self._lock = threading.Lock()

    def record(self, channel: str, kind: str, *, lost: int = 0) -> None:
        """One input and its outcome; ``lost``: things it should have kept and did not (a
        draft, a feedback row, an answer of another client), as the test measured them."""
        assert kind in KINDS, kind
        with self._lock:
            counts = self.counts.setdefault(channel, Counter())
            counts[kind] += 1
            counts["lost"] += lost

    def lines(self) -> list[str]:
        out = []
        total = Counter()
        for channel in sorted(self.counts):
            c = self.counts[channel]
            total.update(c)
            out.append(f"{channel:<14} {sum(c[k] for k in KINDS):>4} inputs  "
                       + "  ".join(f"{k}: {c[k]}" for k in (*KINDS, "lost")))
        if out:
            out.append(f"{'all':<14} {sum(total[k] for k in KINDS):>4} inputs  "
                       + "  ".join(f"{k}: {total[k]}" for k in (*KINDS, "lost")))
            out.append("crash: an exception other than InputError; only cases marked xfail (known bugs) may crash")
            out.append("busy: refused by the server's gate with a clear message; lost: data an input should not have cost")
            out.append("recovered: damage reported with the command that fixes it, and fixed by it")
        return out


LEDGER = Ledger()


def record(channel: str, call, *args):
    """Call ``call(*args)`` and count its outcome. Returns ("input-error", message) or
    (kind, result); any other exception is counted as a crash and re-raised."""
    from assistant.types import InputError

    try:
        result = call(*args)
    except InputError as exc:
        LEDGER.record(channel, "input-error")
        return "input-error", str(exc)
    except Exception:
        LEDGER.record(channel, "crash")
        raise
    kind = kind_of(result) if isinstance(result, Answer) else draft_kind(result)
    LEDGER.record(channel, kind)
    return kind, result


def draft_kind(draft: Draft) -> str:
    modes = {p.answer.mode for p in draft.points}
    if modes == {"refused"}:
        return "refused"
    return "abstained" if all(p.answer.coverage == "none" for p in draft.points) else "answered"


def kind_of(answer: Answer | dict) -> str:
    d = answer.to_dict() if isinstance(answer, Answer) else answer
    if d["mode"] == "refused":
        return "refused"
    return "abstained" if d["coverage"] == "none" else "answered"


# -- sources --------------------------------------------------------------------------------------

class Sources:
    """The corpus files as the loader reads them, to check quotes against (no whitespace)."""

    def __init__(self, corpus_dir: Path) -> None:
        self.corpus_dir = corpus_dir
        self._texts: dict[str, str] = {}

    def squashed(self, source: str) -> str:
        if source not in self._texts:
            doc = load_file(self.corpus_dir / source, self.corpus_dir)
            self._texts[source] = squash_whitespace(doc.text)
        return self._texts[source]

    def verbatim(self, citation: Citation | dict) -> bool:
        c = citation.to_dict() if isinstance(citation, Citation) else citation
        return bool(c["quote"].strip()) and squash_whitespace(c["quote"]) in self.squashed(c["source"])


# -- answers --------------------------------------------------------------------------------------

def check_answer(d: dict, sources: Sources, question: str) -> str:
    """The invariants of one answer (``Answer.to_dict()`` or the API's JSON). Returns its kind."""
    assert d["mode"] in MODES, d["mode"]
    text = d["answer"]
    assert isinstance(text, str) and text.strip(), "empty answer text"
    assert not leaked(json.dumps(d, ensure_ascii=False), question), "prompt text in the answer"
    cites = d["citations"]
    assert d["abstained"] == (d["coverage"] != "direct")
    if d["mode"] == "refused":
        assert d["coverage"] == "none" and not cites
        assert text == prompts.render("extractive", f"refuse_{d['language']}")
    elif d["coverage"] == "none":
        # Not covered: says so and where to ask; at most three nearest bullets are quoted.
        assert d["mode"] == "extractive" and len(cites) <= 3
        first = prompts.render("extractive", f"none_{d['language']}", contact="", nearest=False)
        assert text.startswith(first.strip()), text
    else:
        assert cites, "an answer without a citation"
        if d["coverage"] == "related":
            assert text.startswith(("ビジョンには、", "ビジョンの中で", "The vision ", "Passages of", "「")), text
    assert [c["n"] for c in cites] == list(range(1, len(cites) + 1)), "citation numbers are not 1..n"
    for c in cites:
        assert sources.verbatim(c), f"quote [{c['n']}] is not verbatim in {c['source']}: {c['quote']!r}"
        if d["mode"] in ("extractive", "structure", "extractive-fallback"):
            # Quote answers show each quote on its own line with its number.
            assert f"・{c['quote']} [{c['n']}]" in text
        else:
            assert f"[{c['n']}]" in text
    return kind_of(d)


def check_same(d: dict, clean: dict) -> None:
    """An input that only differs from a clean question by what is stripped: the same answer."""
    keys = ("answer", "mode", "coverage", "citations")
    assert {k: d[k] for k in keys} == {k: clean[k] for k in keys}


def check_draft(draft: Draft, sources: Sources, inquiry: str) -> None:
    d = draft.to_dict()
    json.dumps(d, ensure_ascii=False)
    assert draft.text.startswith(prompts.render("draft", "opening").splitlines()[0])
    assert ("【出典】" in draft.text) == bool(draft.citations)
    assert "要確認" not in draft.text, "staff-only text in the reply"
    assert not leaked(draft.text, inquiry), "prompt text in the draft"
    assert [c.n for c in draft.citations] == list(range(1, len(draft.citations) + 1))
    for c in draft.citations:
        assert sources.verbatim(c), f"quote [{c.n}] is not verbatim: {c.quote!r}"
        assert f"[{c.n}]" in draft.text
    for p in draft.points:
        assert set(p.numbers) <= {c.n for c in draft.citations}
        if p.answer.coverage == "none":
            assert p.question in draft.uncovered
        elif p.answer.coverage == "related":  # what the plan lacks, or that staff should check the fit
            assert any(("、".join(p.answer.missing) or "確認してください") in u for u in draft.uncovered)


# -- what the UI would show --------------------------------------------------------------------

# The only markup ui.render writes itself.
ALLOWED_TAGS = {"div", "span", "p", "blockquote", "mark", "ul", "li", "ruby", "rt", "a", "details", "summary",
                "section"}
ALLOWED_ATTRS = {"class", "id", "tabindex", "lang", "open", "hidden", "aria-label", "href"}
_RAW = re.compile(r"<\s*(script|img|svg|iframe|style|math|object|embed|form|input|button)\b", re.I)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))

    handle_startendtag = handle_starttag


def check_markup(html_text: str) -> None:
    """Only ui.render's own tags and attributes; user or document text never becomes markup."""
    assert not _RAW.search(html_text), f"raw markup in the rendered HTML: {html_text[:300]!r}"
    parser = _Tags()
    parser.feed(html_text)
    parser.close()
    for tag, attrs in parser.found:
        assert tag in ALLOWED_TAGS, f"unexpected <{tag}>"
        for name, value in attrs:
            assert name in ALLOWED_ATTRS, f"unexpected attribute {name}= on <{tag}>"
            assert "javascript:" not in (value or "").lower()
            if name == "href":  # ui.render links only within the page
                assert (value or "").startswith("#vqa-"), f"a link out of the page: {value!r}"


def check_rendered_answer(answer: Answer) -> None:
    """Render an answer as the residents' tab does and check all of it."""
    check_markup(render.chat_text(answer.question))
    check_markup(render.chat_text(answer.text))
    check_markup(render.sources_html(answer, FURIGANA))
    check_markup(render.answer_html(answer, 0, FURIGANA))
    check_markup(render.uncovered_html(answer.suggestions))


def check_rendered_draft(draft: Draft) -> None:
    check_markup(render.uncovered_html(draft.uncovered))
    check_markup(render.citations_html(draft.citations, "vqa-d", furigana=FURIGANA))


def answer_from_dict(d: dict) -> Answer:
    """The API's JSON back into an Answer, to render it as the chat tab would."""
    cites = [Citation(n=c["n"], chunk_id=c["chunk_id"], source=c["source"], title=c["title"],
                      section=tuple(c["section"].split(" › ")) if c["section"] else (), quote=c["quote"],
                      page=c["page"], label=c.get("label", "")) for c in d["citations"]]
    return Answer(question=d["question"], rewritten_query=d["rewritten_query"], text=d["answer"], citations=cites,
                  coverage=d["coverage"], mode=d["mode"], language=d["language"], missing=d["missing"],
                  suggestions=d["suggestions"], notes=d["notes"], unsupported=d["unsupported"],
                  highlights=d.get("highlights", []))
