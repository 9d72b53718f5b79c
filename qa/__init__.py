"""qa: offline question answering over your documents, with citations or an honest abstention."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# No network at run time: models come from installed packages, telemetry stays off.
for _var, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_var, _value)

# The public names load their modules on first use (PEP 562): `qa --help` and `qa docs list`
# must not pay for langchain, Chroma or torch.
_EXPORTS = {
    "ABSTAIN_TEXT": "qa.answer",
    "Answer": "qa.answer",
    "AnswerStream": "qa.answering.chain",
    "Assistant": "qa.assistant",
    "Citation": "qa.answer",
    "DocumentInfo": "qa.documents.store",
    "FeedbackItem": "qa.evaluation.feedback",
    "IndexReport": "qa.answer",
    "Settings": "qa.config",
    "Timings": "qa.answer",
}
__all__ = [
    "ABSTAIN_TEXT",
    "Answer",
    "AnswerStream",
    "Assistant",
    "Citation",
    "DocumentInfo",
    "FeedbackItem",
    "IndexReport",
    "Settings",
    "Timings",
]

if TYPE_CHECKING:
    from qa.answer import ABSTAIN_TEXT, Answer, Citation, IndexReport, Timings
    from qa.answering.chain import AnswerStream
    from qa.assistant import Assistant
    from qa.config import Settings
    from qa.documents.store import DocumentInfo
    from qa.evaluation.feedback import FeedbackItem


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
