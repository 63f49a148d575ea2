"""Qdrant as a source and a target (``provider.py``); ids in ``ids.py``, rules in ``lint.py``."""
