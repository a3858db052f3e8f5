"""System-scale benchmark: every component its own process (measurement 5)."""
