"""Positional schemes: absolute tables and (in the layer stack) relative ones."""

from .absolute import AbsolutePositionalEmbedding

__all__ = ["AbsolutePositionalEmbedding"]
