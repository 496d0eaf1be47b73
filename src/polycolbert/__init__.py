"""polycolbert: multilingual late-interaction retrieval on your own machine."""

__version__ = "0.1.0"
