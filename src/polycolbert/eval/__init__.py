"""Retrieval evaluation: BEIR readers, cross-lingual pools, BM25 / dense / MaxSim systems, metrics, reports.

Entry points: :func:`polycolbert.eval.harness.evaluate` (library) and ``polycolbert eval`` (command line).
"""
