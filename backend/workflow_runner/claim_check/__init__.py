"""Claim check: large Temporal payloads live in a blob store, history holds references."""
