"""The `programs` fixture (the packaged PEXes against a dev server) for every packaged test."""

from tests.packaged.test_exit_codes import programs  # noqa: F401 - a fixture, used by name
