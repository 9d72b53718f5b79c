"""The language models qa answers with: llama.cpp in-process (:mod:`~qa.llm.llamacpp`, decoding
several requests together in :mod:`~qa.llm.engine`, prompt states saved by
:mod:`~qa.llm.kvstate`), qa's own model server for many users (:mod:`~qa.llm.server`, its
client :mod:`~qa.llm.client`), and OpenAI-compatible or Ollama servers (:mod:`~qa.llm.served`).
:func:`~qa.llm.models.make_llm` picks one from the settings and assembles the local GGUF
from its PyPI packages (:mod:`~qa.llm.models`)."""
