"""Entry point of the `stigmer-service` PEX."""

from __future__ import annotations

from backend.stigmer_service.cli import app

if __name__ == "__main__":
    app()
