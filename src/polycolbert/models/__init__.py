"""Checkpoints, backbones, heads and the catalogue of known models."""
