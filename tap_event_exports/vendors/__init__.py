"""Vendor modules: each declares its settings block, streams, schemas and request shapes."""
