"""Training ColBERT heads (and optionally the backbone): data readers, losses and the loop."""
