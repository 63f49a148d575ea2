"""The unit tier: engine logic in-process on the memory provider (see conftest.py)."""
