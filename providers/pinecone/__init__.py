"""Pinecone serverless provider (source and target), through the official ``pinecone`` SDK."""

from vecmig.providers.pinecone.lint import Finding, lint_sample
from vecmig.providers.pinecone.provider import PineconeProvider

__all__ = ["Finding", "PineconeProvider", "lint_sample"]
