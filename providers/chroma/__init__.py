"""Chroma: collections behind a ``chroma run`` server or in a local persistent directory."""
