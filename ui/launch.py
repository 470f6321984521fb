"""Serve a built app. Settings are resolved by the caller (the CLI) and passed in."""
from __future__ import annotations

import os

import gradio as gr
from starlette.middleware import Middleware
from starlette.routing import Route

from .app import ASSISTANT, Serving
from .downloads import ROUTE
from .gate import Gate


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, *,
           prevent_thread_lock: bool = False) -> str:
    """Start the server on ``host:port`` without opening a browser; returns the local URL.

    Binds to loopback by default: put a reverse proxy in front to serve residents, and name
    it in ``VISION_QA_TRUSTED_PROXIES`` so that its clients are told apart.
    """
    serving: Serving = app.serving  # set by create_app
    # uvicorn would otherwise believe X-Forwarded-For from any loopback peer; the gate
    # decides which proxies to believe (ui.gate.ClientResolver).
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    _, local_url, _ = app.launch(
        server_name=host, server_port=port, inbrowser=False, quiet=True, share=False,
        prevent_thread_lock=prevent_thread_lock, show_error=False, ssr_mode=False,
        mcp_server=False, enable_monitoring=False, footer_links=["api"],
        # Nothing in the app takes a file: the upload route is closed by the gate, and this
        # limit stands behind it. Run history would keep residents' inquiries in the browser.
        max_file_size="1kb", run_history=False, css=serving.css, head=serving.head,
        theme=serving.theme,
        app_kwargs={"middleware": [Middleware(Gate, blocks=app, limits=serving.limits, answering=ASSISTANT)],
                    "routes": [Route(ROUTE, serving.downloads.endpoint, methods=["GET"])]},
    )
    if not prevent_thread_lock:
        serving.downloads.clear()  # the server has stopped: no draft outlives it
    return local_url
