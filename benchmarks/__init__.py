"""Benchmarks of the token handshake against the polling design and Temporal's own floor."""
