"""The browser app (Gradio): the chat, its side panels, the Evaluate tab and their rendering.

``app`` wires the page, ``chat`` and ``panels`` hold the chat's and the side panels' callbacks
as plain functions, ``render`` all HTML/Markdown (and all escaping), ``evaluate`` and its
``eval_*`` modules the Evaluate tab. Past chats live in :mod:`qa.history`, which the Assistant owns.

The names below load :mod:`qa.ui.app` (and gradio, slow to import) on first use only: the CLI
must not pay for gradio.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CSS",
    "GENERIC_ERROR",
    "UPLOAD_LABEL",
    "add_documents",
    "auth_from_env",
    "build_app",
    "new_chat",
    "respond",
]


_MODULES = {
    "add_documents": "panels",
    "GENERIC_ERROR": "chat",
    "new_chat": "chat",
    "respond": "chat",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = f"qa.ui.{_MODULES.get(name, 'app')}"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'qa.ui' has no attribute {name!r}")
