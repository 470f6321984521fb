"""The web UI: a thin Gradio shell over ``assistant``. Gradio is imported only here.

Names load lazily, so ``from ui.feedback import FeedbackStore`` (e.g. for an export
command) does not import gradio.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FeedbackStore", "create_app", "create_app_from_settings", "launch"]
_WHERE = {"create_app": "app", "create_app_from_settings": "app", "launch": "launch", "FeedbackStore": "feedback"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ui' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    # Importing ui.launch binds the submodule as ui.launch; put the function back.
    globals()[name] = value
    return value
