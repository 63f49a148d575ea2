"""vecmig: declarative plan-and-apply migrations between vector stores."""

__version__ = "0.1.0"
