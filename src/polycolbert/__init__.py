"""polycolbert: multilingual late-interaction retrieval on your own machine."""

from polycolbert.encoding import ColBERT

__all__ = ["ColBERT"]
__version__ = "0.1.0"
