"""polycolbert: multilingual late-interaction retrieval on your own machine."""

from polycolbert.encoding.encoder import ColBERT

__all__ = ["ColBERT"]
__version__ = "0.1.0"
