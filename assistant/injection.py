"""Sentences of a question that try to steer the assistant instead of asking about the plan."""
from __future__ import annotations

import re
import unicodedata

from assistant.sentences import sentences

_INJECTION = re.compile(
    r"(指示|命令|ルール|設定).{0,6}(無視|忘れ)|システム\s*プロンプト|プロンプト.{0,6}(表示|教え|出力|見せ)|"
    r"ignore\s+(all\s+|any\s+|your\s+|the\s+|previous\s+|prior\s+|above\s+)*(instructions|rules|prompts?)|"
    r"出典.{0,4}(付けず|つけず|なし|不要|省略)|管理者.{0,4}(指示|命令|モード)|指示に従|"
    r"system\s+prompt|hidden\s+prompt|developer\s+mode|jailbreak|you\s+are\s+now\b|disregard\s+(all|your|previous)|"
    r"ignore\s+(all\s+|any\s+)?(prior|previous|above)\s+\w+|"
    r"api\s*keys?|APIキー|パスワード|password|環境変数|environment variables|your (?:configuration|settings|model name)",
    re.I,
)


def strip_injection(question: str) -> tuple[str, bool]:
    """Drop the sentences of a question that try to steer the assistant.

    Returns what is left and whether anything was dropped.
    """
    parts = sentences(question)
    # NFKC first: ＳＹＳＴＥＭ ＰＲＯＭＰＴ in full-width letters is the same request.
    kept = [p for p in parts if not _INJECTION.search(unicodedata.normalize("NFKC", p))]
    joined = "".join(p if p[-1:] in "。！？」』）" else p + " " for p in kept)
    return joined.strip(), len(kept) != len(parts)
