"""Prompt templates: YAML files in the ``prompts`` package, rendered with Jinja2.

``StrictUndefined`` makes a missing variable an error instead of an empty string.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml
from jinja2 import Environment, StrictUndefined

_ENV = Environment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


@lru_cache(maxsize=None)
def load(name: str) -> dict[str, str]:
    """All templates of ``prompts/<name>.yaml`` as a flat mapping of key → template text."""
    text = resources.files("prompts").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"prompts/{name}.yaml must be a mapping of template names to text")
    return {str(k): str(v) for k, v in data.items()}


@lru_cache(maxsize=None)
def _compiled(name: str, key: str):
    templates = load(name)
    if key not in templates:
        raise KeyError(f"prompts/{name}.yaml has no template {key!r}")
    return _ENV.from_string(templates[key])


def render(name: str, key: str, **variables) -> str:
    """Render one template; compiled once per process (compiling cost ~1 s per ask at scale)."""
    return _compiled(name, key).render(**variables).strip()
