"""What qa knows: your files read, split into chunks, embedded and searched.

:mod:`~qa.documents.ingest` reads ``.txt/.md/.pdf/.html/.docx`` and splits them (refusing
binary, oversized and zip-bomb files with a message); :mod:`~qa.documents.embeddings` loads the
shipped embedding model; :mod:`~qa.documents.store` keeps the chunks in Chroma and flags
planted text as it indexes them (:mod:`qa.trust.guard`); :mod:`~qa.documents.client` reaches
Chroma (embedded in ``index/`` or a server) and holds the lock that serializes index runs;
:mod:`~qa.documents.lexical` is the BM25 half of hybrid search.

It guards against losing or mixing up a user's documents: changes are built into a new
collection that goes live only when complete, and two processes indexing at once take turns.
The way in is :class:`~qa.documents.store.Store`, which :class:`qa.Assistant` opens.
"""
