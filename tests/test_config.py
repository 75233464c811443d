"""Settings from flags, the environment and .env files, under original and KERNELPAD_ names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from kernelpad.cli import build_parser, load_settings, loop_factory
from kernelpad.config import Settings, env_names
from kernelpad.sessions.storage.factory import database_for
from kernelpad.sessions.storage.sqlite import SQLite


def test_defaults() -> None:
    settings = Settings(_env_file=None)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.data_dir == Path(".kernelpad")
    assert settings.code_execution_timeout == 5
    assert settings.code_max_output_size == 10_000
    assert settings.rate_limit_executions_per_minute == 60
    assert settings.session_id_length == 12
    assert settings.kernel_pool_size == {
        "python": 1,
        "javascript": 1,
        "typescript": 1,
        "java": 1,
        "cpp": 1,
    }
    assert settings.base_url == "/"
    assert settings.jupyterhub_login is False
    assert len(bytes.fromhex(settings.cookie_secret)) == 32


def test_as_a_jupyterhub_service(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the Hub gives a managed service: where to listen, under which prefix, a token.
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://127.0.0.2:10101")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/services/kernelpad/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "secret")
    settings = Settings(_env_file=None)
    assert (settings.host, settings.port) == ("127.0.0.2", 10101)
    assert settings.base_url == "/services/kernelpad/"
    assert settings.jupyterhub_login is True
    # Explicit settings still win over the Hub's.
    monkeypatch.setenv("PORT", "9003")
    monkeypatch.setenv("KERNELPAD_BASE_URL", "/interviews")
    monkeypatch.setenv("KERNELPAD_JUPYTERHUB_LOGIN", "false")
    settings = Settings(_env_file=None)
    assert (settings.host, settings.port) == ("127.0.0.2", 9003)
    assert settings.base_url == "/interviews/"
    assert settings.jupyterhub_login is False


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("base_url", "services/kernelpad", "must be a path"),
        ("base_url", "/a//b/", "must be a path"),
        ("cookie_secret", "abc", "at least 32 bytes"),
        ("cookie_secret", "zz" * 32, "at least 32 bytes"),
    ],
)
def test_bad_values_are_named(name: str, value: str, problem: str) -> None:
    # The field is named at run time, so its value cannot be checked against its type here.
    values: dict[str, Any] = {name: value}
    with pytest.raises(ValueError, match=problem):
        Settings(_env_file=None, **values)


def test_original_and_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("CODE_EXECUTION_TIMEOUT", "7")
    monkeypatch.setenv("KERNELPAD_CODE_EXECUTION_TIMEOUT", "3")
    monkeypatch.setenv("CORS_ORIGINS", '["http://a.example"]')
    monkeypatch.setenv("ENABLE_SERVER_EXECUTION", "false")
    monkeypatch.setenv("KERNELPAD_KERNEL_POOL_SIZE", '{"python": 2}')
    settings = Settings(_env_file=None)
    assert settings.port == 9001
    assert settings.code_execution_timeout == 3  # the KERNELPAD_ name wins
    assert settings.cors_origins == ["http://a.example"]
    assert settings.enable_server_execution is False
    assert settings.kernel_pool_size == {"python": 2}


def test_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("MAX_PARTICIPANTS_PER_SESSION=4\nKERNELPAD_LOG_LEVEL=debug\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.max_participants_per_session == 4
    assert settings.log_level == "DEBUG"


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9001")
    settings = load_settings(
        ["--port", "9002", "--cors-origins", '["http://b.example"]', "--data-dir", "/tmp/kp"]
    )
    assert settings.port == 9002
    assert settings.cors_origins == ["http://b.example"]
    assert settings.data_dir == Path("/tmp/kp")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--port", "nope"], "port"),
        (["--log-level", "loud"], "loud"),
        (["--kernel-pool-size", "{python: 1}"], "takes JSON"),
        (["--kernel-pool-size", '{"python": -1}'], "negative"),
        (["--database-url", "sqlite://host/kp.sqlite"], "database_url"),
        (["--database-url", "kernelpad.sqlite"], "not a URL"),
    ],
)
def test_bad_settings_exit_with_a_message(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings(argv)
    assert exited.value.code == 2
    assert words in capsys.readouterr().err


def test_the_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    def database(settings: Settings) -> object:
        return database_for(settings.database_url, settings.database_path)

    default = Settings(_env_file=None)
    assert database(default) == SQLite(Path(".kernelpad/kernelpad.sqlite"))
    monkeypatch.setenv("DATABASE_URL", "sqlite:////srv/kp.sqlite")
    assert database(load_settings([])) == SQLite(Path("/srv/kp.sqlite"))
    assert database(load_settings(["--database-url", "sqlite:///kp.sqlite"])) == SQLite(
        Path("kp.sqlite")
    )
    postgresql = database(load_settings(["--database-url", "postgres://kp:pw@db:5433/kp"]))
    assert str(postgresql) == "PostgreSQL postgres://kp:***@db:5433/kp"
    assert "pw" not in repr(postgresql)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://kp:pw-1234@db/kp", "unknown kind of database 'mysql'"),
        # psycopg's own message would quote the password it could not decode.
        ("postgresql://kp:pw-1234%zz@db/kp", "not a PostgreSQL URL"),
    ],
)
def test_a_bad_database_url_is_explained_without_its_password(
    capsys: pytest.CaptureFixture[str], url: str, problem: str
) -> None:
    with pytest.raises(SystemExit):
        load_settings(["--database-url", url])
    err = capsys.readouterr().err
    assert "database_url" in err and problem in err
    assert "pw-1234" not in err


def test_postgresql_without_its_driver_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    with pytest.raises(pydantic.ValidationError, match=r"pip install 'kernelpad\[postgresql\]'"):
        Settings(_env_file=None, database_url="postgresql://db/kp")


def test_the_event_loop_is_uvloop_or_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).event_loop == "uvloop"
    for name in ("uvloop", "asyncio"):
        loop = loop_factory(name)()
        try:
            assert loop.__class__.__module__.startswith(name)
        finally:
            loop.close()
    monkeypatch.setenv("KERNELPAD_EVENT_LOOP", "asyncio")
    assert Settings(_env_file=None).event_loop == "asyncio"
    with pytest.raises(pydantic.ValidationError, match="'uvloop' or 'asyncio'"):
        Settings(_env_file=None, event_loop="trio")
    # Without uvloop installed, the start says what to do instead of a traceback.
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(SystemExit, match="pip install uvloop, or --event-loop asyncio"):
        loop_factory("uvloop")


def test_help_documents_every_setting_and_its_env_names() -> None:
    text = build_parser().format_help()
    for name, field in Settings.model_fields.items():
        assert "--" + name.replace("_", "-") in text
        for env in env_names(name, field):
            assert env in text


def test_entry_points_run() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kernelpad", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "CODE_EXECUTION_TIMEOUT" in out and "--data-dir" in out
    script = Path(sys.executable).with_name("kernelpad")
    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("kernelpad ")


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`--{name.replace('_', '-')}`" in readme, name
        for env in env_names(name, field):
            assert f"`{env}`" in readme, env
