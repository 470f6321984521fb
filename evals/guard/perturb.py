"""Systematic perturbations of faithful sentences: each one makes a supported sentence
unsupported in one known way, so its label holds by construction.

- swap: the part that cited passage k now cites a passage from another direction;
- heading: another item's content behind the cited passage's own (correct) heading, in prose
  or in the 「[1] (章・項目) 本文」 form small models produce;
- number: a number changed, or a date or amount added that the passages do not give;
- place: a place name added that the passages do not name;
- negation: the predicate negated.

Every choice comes from a random generator seeded by the item id, so a rebuild is identical.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable

# Municipalities of the region and a few elsewhere in Hokkaido (data for perturbations only).
PLACES = ("釧路市", "根室市", "釧路町", "厚岸町", "浜中町", "標茶町", "弟子屈町", "鶴居村", "白糠町", "別海町",
          "中標津町", "標津町", "羅臼町", "阿寒湖", "摩周湖", "野付半島", "帯広市", "網走市")
_ADDED_NUMBERS = ("{y}年度までに、", "今後{n}年間で、", "総額{n}億円をかけて、", "管内{n}か所で、", "年間{n}件の目標を掲げ、")
_NEGATIONS = (("ています", "ていません"), ("ている", "ていない"), ("られます", "られません"), ("されます", "されません"),
              ("します", "しません"), ("めます", "めません"), ("ります", "りません"), ("ます", "ません"),
              ("です", "ではありません"), ("する", "しない"), ("される", "されない"), ("める", "めない"),
              ("図る", "図らない"), ("組む", "組まない"))
_TAIL_RE = re.compile(r"((?:\s*[\[［][0-9０-９]+[\]］])*)([。．.]?)\s*$")
_DIGITS_RE = re.compile(r"[0-9０-９]+")
_CITE_RE = re.compile(r"[\[［]([0-9０-９]+)[\]］]")
_WIDE = str.maketrans("0123456789", "０１２３４５６７８９")

Item = dict
Passage = dict


def rng_for(item_id: str, kind: str) -> random.Random:
    return random.Random(f"guard-perturb:{item_id}:{kind}")


def _bigrams(text: str) -> set[str]:
    s = re.sub(r"[\W_]+", "", text)
    return {s[i:i + 2] for i in range(len(s) - 1)}


def _far(a: str, b: str) -> bool:
    ga, gb = _bigrams(a), _bigrams(b)
    return len(ga & gb) / max(1, len(ga | gb)) < 0.2


def _split_tail(sentence: str) -> tuple[str, str]:
    """(body, trailing citations and full stop)."""
    m = _TAIL_RE.search(sentence)
    return sentence[:m.start()], sentence[m.start():]


def _new(item: Item, kind: str, sentence: str, passages: list[Passage], reason: str) -> Item:
    return {"id": f"{item['id']}-{kind}", "kind": kind, "sentence": sentence, "passages": passages,
            "supported": False, "reason": reason, "origin": item["id"]}


def swap(item: Item, chunks: list[Passage]) -> Item | None:
    cited = [int(m.group(1).translate(str.maketrans("０１２３４５６７８９", "0123456789")))
             for m in _CITE_RE.finditer(item["sentence"])]
    if not cited:
        return None
    k = cited[0]
    own = item["passages"]
    sections = {tuple(p["section"][:2]) for p in own}
    pool = [c for c in chunks if c["kind"] in ("bullet", "statement") and tuple(c["section"][:2]) not in sections
            and all(_far(c["text"], p["text"]) for p in own)]
    other = rng_for(item["id"], "swap").choice(pool)
    n = len(own) + 1
    sentence = re.sub(rf"[\[［]{k}[\]］]", f"[{n}]", item["sentence"])
    reason = (f"swap: the part that cited [{k}] now cites [{n}] 「{other['text'][:30]}…」, which does not state it "
              f"(its content is passage [{k}]'s)")
    return _new(item, "swap", sentence, [*own, other], reason)


def heading(item: Item, donors: list[Item]) -> Item | None:
    own = item["passages"]
    if len(own) != 1 or own[0]["kind"] not in ("bullet", "statement") or not own[0]["section"]:
        return None
    rng = rng_for(item["id"], "heading")
    section = own[0]["section"]
    pool = [d for d in donors if len(d["passages"]) == 1 and d["passages"][0]["section"] != section
            and d["passages"][0]["kind"] in ("bullet", "statement") and _far(d["passages"][0]["text"], own[0]["text"])]
    donor = rng.choice(pool)
    head = re.sub(r"^[0-9０-９ⅠⅡⅢⅣⅤ]+\s*", "", section[-1])
    if rng.random() < 0.5:
        body, _ = _split_tail(_CITE_RE.sub("", donor["sentence"]))
        sentence = f"「{head}」の取組として、{body}[1]。"
        form = "prose"
    else:
        sentence = f"[1] ({' › '.join(section)}) {donor['passages'][0]['text']}"
        form = "passage-line form"
    reason = (f"heading ({form}): passage [1]'s own heading 「{head[:20]}」 with the content of another passage "
              f"(「{donor['passages'][0]['text'][:24]}…」, item {donor['id']}), which [1] does not state")
    return _new(item, "heading", sentence, own, reason)


def number(item: Item) -> Item | None:
    rng = rng_for(item["id"], "number")
    sentence = item["sentence"]
    text = "".join(p["text"] for p in item["passages"])
    body, tail = _split_tail(sentence)
    masked = _CITE_RE.sub(lambda c: "#" * len(c.group()), body)  # digits of mid-sentence citations are no figures
    m = _DIGITS_RE.search(masked)
    if m:
        old = m.group()
        value = int(old.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
        new = str(value + rng.choice((1, 2, 3, -1)) if value > 3 else value + rng.choice((1, 2, 3)))
        if not old.isascii():
            new = new.translate(_WIDE)
        changed = body[:m.start()] + new + body[m.end():] + tail
        return _new(item, "number", changed, item["passages"],
                    f"number: {old} changed to {new}; the passages say {old}")
    for _ in range(20):
        phrase = rng.choice(_ADDED_NUMBERS).format(y=rng.randint(2026, 2040), n=rng.choice((3, 5, 10, 12, 20, 30, 50)))
        figure = _DIGITS_RE.search(phrase).group()
        if figure not in text and figure.translate(_WIDE) not in text:
            return _new(item, "number", phrase + sentence, item["passages"],
                        f"number: 「{phrase.rstrip('、')}」 added; the passages give no such figure")
    return None


def place(item: Item) -> Item | None:
    rng = rng_for(item["id"], "place")
    text = "".join(p["text"] for p in item["passages"])
    name = rng.choice([p for p in PLACES if p not in text])
    return _new(item, "place", f"{name}では、{item['sentence']}", item["passages"],
                f"place: 「{name}では」 added; the passages name no {name}")


def negation(item: Item) -> Item | None:
    body, tail = _split_tail(item["sentence"])
    for old, new in _NEGATIONS:
        if body.endswith(old):
            return _new(item, "negation", body[: -len(old)] + new + tail, item["passages"],
                        f"negation: 「…{old}」 became 「…{new}」; the passages state it positively")
    return None


def perturb_all(faithful: list[Item], chunks: list[Passage]) -> list[Item]:
    """Every applicable perturbation of every faithful item (donors from the same list)."""
    makers: list[Callable[[Item], Item | None]] = [
        lambda it: swap(it, chunks), lambda it: heading(it, [d for d in faithful if d is not it]),
        number, place, negation]
    return [p for it in faithful for make in makers if (p := make(it)) is not None]
