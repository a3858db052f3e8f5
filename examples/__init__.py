"""Runnable examples: the one-command demo of the whole system and its workflow documents."""
