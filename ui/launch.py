"""Serve a built app. Settings are resolved by the caller (the CLI) and passed in."""
from __future__ import annotations

import gradio as gr


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, *,
           prevent_thread_lock: bool = False) -> str:
    """Start the server on ``host:port`` without opening a browser; returns the local URL.

    Binds to loopback by default: put a reverse proxy in front to serve residents.
    """
    _, local_url, _ = app.launch(
        server_name=host, server_port=port, inbrowser=False, quiet=True, share=False,
        prevent_thread_lock=prevent_thread_lock, show_error=False, ssr_mode=False,
        mcp_server=False, enable_monitoring=False, footer_links=["api"],
    )
    return local_url
