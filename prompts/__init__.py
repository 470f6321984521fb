"""Prompt templates (YAML and Jinja), loaded with importlib.resources."""
