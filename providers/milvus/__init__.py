"""Milvus as a source and a target, through the official ``pymilvus`` client (``MilvusClient``).

Import :mod:`vecmig.providers.milvus.provider` for the class: this package stays light so
that the spec loader's kit import does not pull in pymilvus and gRPC.
"""
