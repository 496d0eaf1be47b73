"""The embedded multi-vector index: residual-compressed token vectors in a folder, searched in-process.

>>> from polycolbert.index import Index   # Index.create(path, model=..., dimensions=...), Index.open(path)
>>> from polycolbert.index import DocumentBatch   # Index.add_stream(batches): big corpora, bounded memory
"""

from polycolbert.documents import DocumentBatch
from polycolbert.index.index import Index

__all__ = ["DocumentBatch", "Index"]
