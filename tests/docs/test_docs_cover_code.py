"""Every environment variable the code reads and every CLI command is in the docs.

The variables are found in the code (its syntax trees), the commands in the typer apps, so a
new setting or command left undocumented fails here; the self-tests below keep that proven.
"""

from __future__ import annotations

import pathlib
import textwrap

import typer

from backend.stigmer_service.cli import app as service_app
from backend.workflow_runner.cli import app as runner_app
from tests.docs import commands, docs_text, envvars

BACKEND = docs_text.REPO / "backend"
# The page docs/operations.md names as the full list of the service's settings.
SERVICE_PAGE = "docs/stigmer-service.md"
APPS = {"stigmer-service": service_app, "workflow-runner": runner_app}


def scan_backend() -> envvars.Scan:
    total = envvars.Scan()
    for path in sorted(BACKEND.rglob("*.py")):
        found = envvars.scan_source(
            path.read_text(encoding="utf-8"), str(path.relative_to(docs_text.REPO))
        )
        total.reads.extend(found.reads)
        total.unresolved.extend(found.unresolved)
    return total


def undocumented_variables(reads: list[envvars.EnvRead], texts: list[str]) -> list[str]:
    return sorted(
        {
            f"{r.name}{'*' if r.prefix else ''} (read at {r.where})"
            for r in reads
            if not any(docs_text.mentions(t, r.name, prefix=r.prefix) for t in texts)
        }
    )


def not_in_settings_table(reads: list[envvars.EnvRead], page: str) -> list[str]:
    rows = docs_text.table_rows(page)
    return sorted(
        {
            f"{r.name} (read at {r.where})"
            for r in reads
            if not any(docs_text.mentions(row, r.name, prefix=r.prefix) for row in rows)
        }
    )


def test_the_scan_sees_the_settings_and_both_command_lines() -> None:
    # A sandbox without the backend's files would otherwise pass with nothing to check.
    where = {r.where.split(":")[0] for r in scan_backend().reads}
    assert {
        "backend/stigmer_service/config.py",
        "backend/stigmer_service/cli.py",
        "backend/workflow_runner/cli.py",
    } <= where


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    scan = scan_backend()
    assert scan.unresolved == [], (
        "environment reads whose variable name the scan cannot work out; name it with a "
        "constant or literal so the docs test can check it"
    )
    texts = [page.text for page in docs_text.pages()]
    missing = undocumented_variables(scan.reads, texts)
    assert missing == [], "not in README.md or docs/*.md:\n" + "\n".join(missing)


def test_every_setting_of_the_service_is_in_its_settings_table() -> None:
    reads = [r for r in scan_backend().reads if r.where.startswith("backend/stigmer_service/")]
    page = (docs_text.REPO / SERVICE_PAGE).read_text(encoding="utf-8")
    missing = not_in_settings_table(reads, page)
    assert missing == [], f"no row in the table of {SERVICE_PAGE}:\n" + "\n".join(missing)


def test_every_command_is_documented() -> None:
    texts = [page.text for page in docs_text.pages()]
    assert commands.command_paths(service_app), "no command found in the service's app"
    missing = [
        f"{program} {path}"
        for program, app in APPS.items()
        for path in commands.undocumented(program, app, texts)
    ]
    assert missing == [], "commands in no code span of README.md or docs/*.md:\n" + "\n".join(
        missing
    )


# Self-tests: the checks above fail on a new setting or command left undocumented.

SYNTHETIC = textwrap.dedent(
    """
    import os
    from collections.abc import Mapping

    import typer

    NAME = "STIGMER_FROM_CONSTANT"
    PREFIX = "STIGMER_PREFIXED_"

    def _float(name: str, default: float) -> float:
        raw = os.environ.get(name, "")
        return float(raw) if raw else default

    def _secret(name: str) -> str:
        return PREFIX + name.upper()

    def _traced(env: Mapping[str, str] = os.environ) -> bool:
        return _inner(env)

    def _inner(env: Mapping[str, str]) -> bool:
        return "STIGMER_THROUGH_PARAMETER" in env

    class Settings:
        @classmethod
        def from_env(cls) -> float:
            key = os.environ.get("STIGMER_LITERAL") or "x"
            os.environ[NAME]
            os.getenv("STIGMER_GETENV")
            os.environ.get(_secret("anything"))
            os.environ.get(configured or "STIGMER_FALLBACK")
            os.environ.get(f"STIGMER_FSTRING_{key}")
            return _float("STIGMER_NEW_THING", 1.0)

    def serve(listen: str = typer.Option("", envvar="STIGMER_FROM_TYPER")) -> None:
        os.environ.get(key_from_somewhere_else)
    """
)


def test_self_test_the_scan_finds_every_form_of_read() -> None:
    scan = envvars.scan_source(SYNTHETIC, "synthetic.py")
    assert {(r.name, r.prefix) for r in scan.reads} == {
        ("STIGMER_FROM_CONSTANT", False),
        ("STIGMER_PREFIXED_", True),
        ("STIGMER_THROUGH_PARAMETER", False),
        ("STIGMER_LITERAL", False),
        ("STIGMER_GETENV", False),
        ("STIGMER_FALLBACK", False),
        ("STIGMER_FSTRING_", True),
        ("STIGMER_NEW_THING", False),
        ("STIGMER_FROM_TYPER", False),
    }
    # A name the scan cannot work out is reported, never silently skipped.
    assert [u.expression for u in scan.unresolved] == ["key_from_somewhere_else"]


def test_self_test_a_new_setting_left_undocumented_fails() -> None:
    config = (BACKEND / "stigmer_service" / "config.py").read_text(encoding="utf-8")
    changed = config.replace(
        "test_callback_delay=_float(",
        'new_thing=_float("STIGMER_NEW_THING", 1.0),\n            test_callback_delay=_float(',
    )
    assert changed != config, "config.py no longer reads settings through _float"
    path = "backend/stigmer_service/config.py"
    reads = envvars.scan_source(changed, path).reads
    texts = [page.text for page in docs_text.pages()]
    assert [m.split(" ")[0] for m in undocumented_variables(reads, texts)] == ["STIGMER_NEW_THING"]
    page = (docs_text.REPO / SERVICE_PAGE).read_text(encoding="utf-8")
    assert [m.split(" ")[0] for m in not_in_settings_table(reads, page)] == ["STIGMER_NEW_THING"]
    # Once written down, it passes.
    documented = page + "\n| `STIGMER_NEW_THING` | `1` | A new thing. |\n"
    assert not_in_settings_table(reads, documented) == []
    assert undocumented_variables(reads, [*texts, documented]) == []


def test_self_test_a_new_command_left_undocumented_fails() -> None:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    @app.command()
    def callers() -> None:
        pass

    @app.command("frobnicate-all")
    def frobnicate() -> None:
        pass

    sub = typer.Typer()

    @sub.command()
    def rotate() -> None:
        pass

    app.add_typer(sub, name="keys")
    texts = [page.text for page in docs_text.pages()]
    assert commands.command_paths(app) == ["callers", "frobnicate-all", "keys rotate"]
    assert commands.undocumented("stigmer-service", app, texts) == ["frobnicate-all", "keys rotate"]
    written = "Run `stigmer-service.pex keys rotate`.\n\n| `frobnicate-all [--x]` | what |\n"
    assert commands.undocumented("stigmer-service", app, [*texts, written]) == []


def test_self_test_docs_text_helpers() -> None:
    text = "a `STIGMER_SECRET_<NAME>` b\n\n```\nstigmer-service callers\n```\n"
    assert docs_text.mentions(text, "STIGMER_SECRET_", prefix=True)
    assert not docs_text.mentions(text, "STIGMER_SECRET")
    assert docs_text.code_spans(text) == ["stigmer-service callers", "STIGMER_SECRET_<NAME>"]
    assert not docs_text.mentions("`STIGMER_LISTEN_ADDRESS`", "STIGMER_LISTEN")
    assert pathlib.Path(docs_text.REPO / "README.md").is_file()
