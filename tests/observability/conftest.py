"""Logs of in-process components go to the real stderr, never into a CLI's captured output."""

from __future__ import annotations

import pytest

from backend.common import logs


@pytest.fixture(scope="session", autouse=True)
def _logs_to_stderr() -> None:
    logs.configure()
