"""Scaffolding every test folder (and the benchmarks) shares, written once."""
