"""LanceDB (embedded): one directory of Lance tables; a collection is a table."""
