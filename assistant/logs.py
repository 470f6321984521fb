"""JSON-lines logs with per-stage timings. Question text is left out unless allowed."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

LOGGER = logging.getLogger("vision_qa")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)), "level": record.levelname,
                "event": record.getMessage(), **getattr(record, "fields", {})}
        return json.dumps(data, ensure_ascii=False)


def configure(path: Path) -> None:
    """Send the assistant's events to ``path`` as JSON lines (called by the entry points)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonLines())
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


def event(name: str, **fields) -> None:
    if LOGGER.isEnabledFor(logging.INFO):
        LOGGER.info(name, extra={"fields": fields})
