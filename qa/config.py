"""One typed settings object for qa, read from arguments, ``QA_*`` env vars and ``qa.toml``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qa"


class Settings(BaseSettings):
    """Everything qa can be configured with.

    Precedence: keyword arguments, then ``QA_<FIELD>`` environment variables, then
    ``qa.toml`` in the working directory (``config_file``, when given as a keyword: a
    workspace's own, see :mod:`qa.workspaces`), then the defaults below.

    Example:
        >>> Settings(top_k=3).top_k
        3
    """

    model_config = SettingsConfigDict(env_prefix="QA_", toml_file="qa.toml", extra="ignore")

    seeds_dir: Path = Field(Path("seeds"), description="Folder of documents to index.")
    index_dir: Path = Field(Path("index"), description="Where the embedded Chroma index lives.")
    collection: str = Field("documents", description="Chroma collection name.")
    config_file: Path = Field(
        Path("qa.toml"),
        description="The settings file read (as a keyword argument only) and written by "
        "`qa calibrate`; a workspace's is workspaces/<name>/qa.toml.",
    )
    evals_dir: Path = Field(
        Path("evals"),
        description="Where gold sets, generated sets (generated/), reports and baselines are.",
    )
    workspaces_dir: Path = Field(
        Path("workspaces"),
        description="Where named workspaces live, one folder each (`qa workspace create`).",
    )
    chunk_size: int = Field(500, ge=100, le=8000, description="Target chunk length (characters).")
    chunk_overlap: int = Field(100, ge=0, le=2000, description="Overlap between chunks (chars).")
    top_k: int = Field(4, ge=1, le=20, description="Chunks given to the LLM per question.")
    retrieval: Literal["hybrid", "dense"] = Field(
        "hybrid",
        description="'hybrid' fuses dense and BM25 rankings (reciprocal rank fusion); "
        "'dense' uses embeddings only.",
    )
    passages: Literal["whole", "focused"] = Field(
        "whole",
        description="What the LLM reads of each retrieved passage: 'whole' = the whole chunk; "
        "'focused' = the sentence that bears most on the question and its neighbour (13 % "
        "fewer prompt tokens on SQuAD, answers mixed: docs/benchmarks.md). A corpus read whole "
        "is never trimmed.",
    )
    reading: Literal["progressive", "wide"] = Field(
        "wide",
        description="Retrieval mode, short answers: 'progressive' first reads the best "
        "`narrow_passages` alone and replies when the answer decision stands behind that "
        "answer, else reads every passage (the local LLM pays only for the added passages "
        "and the question: the narrow prompt is the wide one's prefix); 'wide' reads every "
        "passage at once.",
    )
    narrow_passages: int = Field(
        1, ge=1, le=19, description="With reading='progressive', the passages read first."
    )
    full_context_chars: int = Field(
        6000,
        ge=0,
        description="If all indexed text fits in this many characters, the LLM sees all of it "
        "(a stable, KV-cached prompt) instead of the top-k chunks; 0 disables.",
    )
    abstain_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Abstain when the LLM's probability of answering 'none' reaches this.",
    )
    answerability: Literal["learned", "off"] = Field(
        "learned",
        description="'learned': a logistic model fitted across genres (SQuAD, BoolQ, MultiRC; "
        "qa/data/decision.json, fit/fit_decision.py) estimates whether each supported answer "
        "is right from what the answering pass reports; 'off': every supported answer is shown.",
    )
    answer_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="A candidate whose learned P(answer is right) is below this is shown "
        "unconfirmed, not asserted: higher asserts less and is wrong less (docs/benchmarks.md "
        "has the curve). Unset: the shipped line of the decision the backend allows "
        "(fit/precision_line.py). `qa calibrate` fits it to your ratings.",
    )
    agreement_samples: int = Field(
        0,
        ge=0,
        le=8,
        description="Short answers the local LLM samples from the same (cached) prompt to "
        "check that it says the same again; an asserted answer fewer than "
        "`agreement_threshold` of them agree with is shown unconfirmed. 0 (the default) "
        "skips it (docs/benchmarks.md has what it measured).",
    )
    agreement_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="With `agreement_samples`, the share of sampled answers that must name "
        "an asserted short answer for it to stay asserted.",
    )
    auto_calibrate: bool = Field(
        True,
        description="When the documents change, `qa chat`/`qa api` generate questions from them "
        "in the background and ask them (the corpus's regression set, "
        "evals/generated/<folder>.jsonl), and record how a decision fitted on them would do; "
        "the chat goes first. It never changes the decision: only `qa calibrate --synthetic` "
        "can, for that index, when the fit passes its check.",
    )
    support_threshold: float = Field(
        0.0,
        ge=0,
        le=1,
        description="A second LLM pass checks each answer against its cited passage; abstain "
        "when its probability of 'yes' is below this (0, the default, skips the check).",
    )
    answer_shapes: Literal["auto", "short"] = Field(
        "auto",
        description="auto: answer yes/no, list, open and overview questions in their own "
        "shape (qa.answering.shapes); short: always the shortest answer, as a fact extractor.",
    )
    yesno_reading: Literal["whole", "bearing"] = Field(
        "whole",
        description="whole: the answering pass decides a yes/no question, shown with the "
        "sentence (not a heading) that mentions most of it; bearing: over more than a "
        "paragraph a short extra pass also reads the sentences that bear on the question, and "
        "the sentence shown must agree by the model's own read of it (1-3 extra passes; "
        "measured no better with the default model, see docs/benchmarks.md).",
    )
    open_support_threshold: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Open answers, lists and overviews are withdrawn when the answer checker's "
        "P(yes) is below this (a second prompt per answer); 0 skips the check.",
    )
    guard: str = Field(
        "neutralize,withhold",
        pattern=r"^(|(neutralize|withhold|datamark)(,(neutralize|withhold|datamark))*)$",
        description="Defences against instructions planted in documents, comma-separated: "
        "'neutralize' (spans the index flags never reach the model), 'withhold' (a reply "
        "passing on what such a span plants is withheld), 'datamark' (passage words joined by "
        "a marker the prompt calls data; measured in docs/reliability.md, off by default). "
        "Empty: none.",
    )
    max_file_mb: float = Field(20.0, gt=0, description="Larger documents are skipped.")
    max_question_chars: int = Field(2000, ge=10, description="Longer questions are refused.")
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="Sentence-transformers model: 'all-MiniLM-L6-v2' (shipped) or a local path.",
    )
    llm_backend: Literal["local", "openai", "ollama", "qa"] = Field(
        "local",
        description="'local' runs a GGUF in-process with llama.cpp; 'openai' calls an "
        "OpenAI-compatible server (llama.cpp server, vLLM, a hosted API); 'ollama' Ollama; "
        "'qa' the model server of `qa serve` (QA_LLM_SERVER_URL), shared by every worker "
        "and reporting everything the local model does.",
    )
    llm_server_url: str = Field(
        "http://127.0.0.1:8090",
        description="The model server of `qa serve` (for llm_backend='qa').",
    )
    llm_model: str = Field(
        "qwen2.5-coder-1.5b",
        description="local: 'qwen2.5-coder-1.5b', 'qwen2.5-coder-0.5b' or a path to a .gguf file; "
        "openai/ollama: the model name the server serves.",
    )
    openai_base_url: str = Field(
        "http://localhost:8080/v1", description="Base URL of the OpenAI-compatible server."
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("qa_openai_api_key", "openai_api_key"),
        description="API key for the OpenAI-compatible server (QA_OPENAI_API_KEY or "
        "OPENAI_API_KEY); local servers need none.",
    )
    openai_grammar: bool = Field(
        False,
        description="Send the answer format as a GBNF grammar; only llama.cpp's server "
        "understands it, other servers reject the request.",
    )
    ollama_base_url: str = Field("http://localhost:11434", description="Ollama server URL.")
    request_timeout: float = Field(
        60.0, gt=0, description="Seconds to wait for an LLM or Chroma server before failing."
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(160, ge=16, le=4096, description="Upper bound on generated tokens.")
    n_ctx: int = Field(4096, ge=512, description="Local LLM context window (tokens).")
    threads: int | None = Field(None, ge=1, description="CPU threads for the local LLM.")
    chroma_host: str | None = Field(None, description="Chroma server host; unset = embedded.")
    chroma_port: int = Field(8000, description="Chroma server port.")
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, description="Where assembled model files are kept."
    )
    feedback_path: Path = Field(
        Path("evals/feedback.jsonl"),
        description="Where 👍/👎 ratings are appended as gold items (run them with "
        "`qa eval --gold`).",
    )
    history_path: Path | None = Field(
        None,
        description="SQLite file of the browser chats; unset = history.sqlite3 in index_dir "
        "(in cache_dir when a Chroma server holds the index).",
    )
    admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="With QA_AUTH on, the users who may run evaluations, apply an answer "
        "threshold and promote ratings in the browser (QA_ADMINS=ann,bob); everyone else sees "
        "the Evaluate tab read-only.",
    )
    parallel: int = Field(
        1,
        ge=1,
        le=16,
        description="Questions the local LLM answers at once, decoded together in one batch "
        "(continuous batching); more wait in line. 1 by measurement on 2 cores: four at once "
        "answered 20 browser users slower than one at a time (docs/benchmarks.md); try more "
        "on a CPU with spare cores.",
    )
    prefill_chunk: int = Field(
        64,
        ge=16,
        le=448,
        description="Prompt tokens the local LLM reads per step while other answers are being "
        "generated: smaller keeps those answers flowing during a long prompt, larger reads the "
        "prompt faster. Alone, a prompt is read 512 tokens at a time.",
    )
    kv_state_files: int = Field(
        4,
        ge=0,
        description="Prompt-prefix states (the KV cache of the fixed part of the prompt) kept on "
        "disk in kv-states/ next to the index (in cache_dir when a Chroma server holds the index), "
        "so a restart or another worker skips computing them; about 29 MB per 1,000 prompt "
        "tokens with the default model. 0 keeps them in RAM only.",
    )
    history_max_chats: int = Field(
        50,
        ge=1,
        description="Chats kept per user; saving one more deletes that user's oldest.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="JSON file of the HTTP API's keys (bcrypt hashes, each with a user name and "
        "a role; `qa api keys add NAME` creates one). Unset or without keys: the API answers "
        "callers on 127.0.0.1 only, without a key.",
    )
    api_max_queue: int = Field(
        32,
        ge=0,
        description="Questions that may wait for the model through the HTTP API (beyond those "
        "being answered); one more gets 429 with Retry-After.",
    )
    api_max_body_mb: float = Field(
        25.0,
        gt=0,
        description="Larger HTTP API request bodies (a question, an upload) are refused with 413.",
    )

    @field_validator("admins", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        """``"ann, bob"`` (the environment variable's form) as ``["ann", "bob"]``."""
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        own = isinstance(init_settings, InitSettingsSource) and init_settings.init_kwargs.get(
            "config_file"
        )
        toml = TomlConfigSettingsSource(settings_cls, own or cls.model_config.get("toml_file"))
        return (init_settings, env_settings, toml)
