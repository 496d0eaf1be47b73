"""Drop-in layers for code written against Stanford ColBERT or RAGatouille (thin wrappers)."""
