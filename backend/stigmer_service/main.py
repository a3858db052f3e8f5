"""Entry point of the `stigmer-service` PEX."""

from __future__ import annotations

from backend.common import cli_main
from backend.stigmer_service.cli import app

if __name__ == "__main__":
    cli_main.run(lambda: app(prog_name="stigmer-service"))
