"""The embedded multi-vector index: residual-compressed token vectors in a folder, searched in-process.

>>> from polycolbert.index import Index   # Index.create(path, model=..., dimensions=...), Index.open(path)
>>> from polycolbert.index import DocumentBatch   # Index.add_stream(batches): big corpora, bounded memory
>>> from polycolbert.index import IndexBusy, IndexDamaged   # another writer held the lock; a damaged file
"""

from polycolbert.documents import DocumentBatch
from polycolbert.index.errors import IndexBusy, IndexDamaged
from polycolbert.index.index import Index, check_folder

__all__ = ["DocumentBatch", "Index", "IndexBusy", "IndexDamaged", "check_folder"]
