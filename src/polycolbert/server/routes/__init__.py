"""The HTTP routes, one module per API: ``jina`` (multi-vector, embeddings, rerank) and ``indexes``."""
