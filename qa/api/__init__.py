"""The HTTP API: qa for programs that already speak OpenAI's chat API, curl, or any language.

``POST /v1/chat/completions`` and ``GET /v1/models`` in OpenAI's shapes (the reply's ``qa``
field holds the citations and qa's judgement of the answer), ``/v1/documents`` to upload, list
and remove documents, ``POST /v1/feedback`` to rate a reply; the OpenAPI page is at ``/docs``.

What it guards against: callers without a key (:mod:`~qa.api.keys`: bcrypt-hashed keys with a
user and a role, optionally one per workspace; without keys only this machine may call), a
crowd holding the one model (:mod:`~qa.llm.queue`: one line for browser and API users, 429 with
``Retry-After`` when it is full, a disconnected client's place freed), unchecked words on the
wire and requests qa cannot honour (:mod:`~qa.api.chat`), and stack traces
(:mod:`~qa.api.errors`: OpenAI-style error bodies, 4xx for every bad input).

The way in: :func:`~qa.api.app.build_api` (a FastAPI app over an Assistant) and
:func:`~qa.api.serve.serve` (``qa api`` alone, or beside the browser UI for ``qa chat`` and
``qa serve``). Imported on demand only: the CLI must not pay for FastAPI.
"""
