"""Where token vectors are stored and searched: the embedded index or Qdrant, behind one protocol."""
