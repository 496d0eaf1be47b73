"""Text to token vectors: the encoder object and the recipe it follows.

``encoder.py`` holds :class:`ColBERT` (load a checkpoint, encode queries and documents, pick the compute
dtype); ``recipe.py`` decides which ids go into the model and which output rows come back (markers,
query padding, truncation and windows, the punctuation skiplist, length-sorted batches).
"""

from polycolbert.encoding.encoder import ColBERT

__all__ = ["ColBERT"]
