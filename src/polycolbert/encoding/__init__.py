"""Text to token vectors: the encoder object and the recipe it follows.

``encoder.py`` holds :class:`ColBERT` (load a checkpoint, encode queries and documents, pick the compute
dtype); ``protocol.py`` the :class:`TokenEncoder` protocol the index, backends and server type
against; ``precision.py`` which arithmetic runs (float32, bf16, int8; ``auto`` from the CPU flags);
``recipe.py`` decides which ids go into the model and which output rows come back (markers,
query padding, truncation and windows, the punctuation skiplist, length-sorted batches); ``dense.py``
gives one vector per text from the packaged backbone, as multilingual-e5 is meant to be used.
"""

from polycolbert.encoding.encoder import ColBERT
from polycolbert.encoding.protocol import TokenEncoder

__all__ = ["ColBERT", "TokenEncoder"]
