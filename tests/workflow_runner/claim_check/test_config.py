"""The claim check's settings from the environment, and the data converter they build."""

from __future__ import annotations

import pathlib

import pytest
import temporalio.converter
from typer.testing import CliRunner

from backend.workflow_runner.claim_check import config
from backend.workflow_runner.claim_check.codec import ClaimCheckCodec
from backend.workflow_runner.claim_check.errors import ClaimCheckConfigError
from backend.workflow_runner.claim_check.stores import FileStore, PostgresStore
from backend.workflow_runner.cli import app


def test_the_default_store_is_a_directory_under_xdg_state_home() -> None:
    settings = config.ClaimCheckSettings.from_env({"XDG_STATE_HOME": "/var/state"})
    assert settings == config.ClaimCheckSettings("file:///var/state/stigmer/claim-check")
    assert (settings.threshold_bytes, settings.max_bytes) == (51200, 64 * 1024 * 1024)


def test_without_xdg_state_home_the_store_is_under_the_home_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = config.ClaimCheckSettings.from_env({})
    assert settings.store == (tmp_path / ".local/state/stigmer/claim-check").as_uri()


def test_each_store_url_opens_its_store() -> None:
    file_store = config.open_store("file:///srv/claim%20check")
    assert isinstance(file_store, FileStore)
    assert file_store.directory == pathlib.Path("/srv/claim check")
    assert isinstance(config.open_store("postgresql://u:pw@db/stigmer"), PostgresStore)
    assert isinstance(config.open_store("postgres://db/stigmer"), PostgresStore)
    sqlalchemy_style = config.open_store("postgresql+asyncpg://db/stigmer")
    assert isinstance(sqlalchemy_style, PostgresStore)
    assert sqlalchemy_style._url == "postgresql://db/stigmer"


def test_off_turns_the_codec_off() -> None:
    settings = config.ClaimCheckSettings.from_env({config.STORE_ENV: "OFF"})
    assert not settings.enabled
    assert config.data_converter(settings) == temporalio.converter.default()


def test_the_data_converter_carries_the_codec_with_the_settings(tmp_path: pathlib.Path) -> None:
    settings = config.ClaimCheckSettings.from_env(
        {
            config.STORE_ENV: tmp_path.as_uri(),
            config.THRESHOLD_ENV: "4096",
            config.MAX_BYTES_ENV: "1048576",
        }
    )
    codec = config.data_converter(settings).payload_codec
    assert isinstance(codec, ClaimCheckCodec)
    assert isinstance(codec.store, FileStore) and codec.store.directory == tmp_path
    assert (codec.threshold_bytes, codec.max_bytes) == (4096, 1048576)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({config.STORE_ENV: "s3://bucket"}, "STIGMER_CLAIM_CHECK_STORE: expected file:///"),
        ({config.STORE_ENV: "file://host/dir"}, "STIGMER_CLAIM_CHECK_STORE: a file store is"),
        ({config.THRESHOLD_ENV: "50k"}, "STIGMER_CLAIM_CHECK_THRESHOLD_BYTES: not a whole"),
        ({config.THRESHOLD_ENV: "100"}, "STIGMER_CLAIM_CHECK_THRESHOLD_BYTES: must be at least"),
        ({config.MAX_BYTES_ENV: "0"}, "STIGMER_CLAIM_CHECK_MAX_BYTES: must be above zero"),
        ({config.MAX_BYTES_ENV: "2000"}, "STIGMER_CLAIM_CHECK_MAX_BYTES: must not be below"),
    ],
)
def test_a_malformed_variable_is_an_error_naming_it(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ClaimCheckConfigError, match=message):
        config.ClaimCheckSettings.from_env({"XDG_STATE_HOME": "/var/state", **environ})


def test_a_store_url_is_never_echoed(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ClaimCheckConfigError) as error:
        config.ClaimCheckSettings.from_env({config.STORE_ENV: "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("command", [["worker"], ["run", "{document}"]])
def test_the_commands_exit_1_naming_a_malformed_variable(
    command: list[str], tmp_path: pathlib.Path
) -> None:
    document = tmp_path / "doc.yaml"
    document.write_text(
        "document: {dsl: 1.0.0, namespace: t, name: n, version: '1'}\n"
        "do:\n  - a: {set: {x: 1}}\n"
    )
    args = [part.format(document=document) for part in command]
    result = CliRunner(
        env={"TEMPORAL_ADDRESS": "127.0.0.1:1", config.STORE_ENV: "s3://bucket"}
    ).invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "STIGMER_CLAIM_CHECK_STORE: expected file:///absolute/directory" in result.output
