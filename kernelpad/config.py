"""kernelpad's settings, in one place.

Every setting is read from the command line, the environment or a ``.env`` file, in that order of
precedence. Each one answers to ``KERNELPAD_<NAME>``; the settings of the original API design
(SEED_API.md) also answer to their original names (``PORT``, ``CODE_EXECUTION_TIMEOUT``, ...), so
deployments written for it keep working.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernelpad.sessions.storage.factory import database_from_url

PREFIX = "KERNELPAD_"


def setting(default: Any, description: str, *, original: str | None = None, **kw: Any) -> Any:
    """A field that answers to ``KERNELPAD_<NAME>`` and, if given, to its original name."""
    return Field(default, description=description, json_schema_extra={"original": original}, **kw)


class Settings(BaseSettings):
    """Everything an operator can set. Field names are the ``--flag`` and env names, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, validate_default=True
    )

    # Server
    app_name: str = setting("kernelpad", "Name shown in the API and logs.", original="APP_NAME")
    debug: bool = setting(False, "Tornado debug mode and tracebacks in logs.", original="DEBUG")
    host: str = setting("127.0.0.1", "Address to listen on.", original="HOST")
    port: int = setting(8000, "Port to listen on.", original="PORT", ge=0, le=65535)
    base_url: str = setting(
        "/",
        "Path every URL of kernelpad is under, behind a proxy; as a JupyterHub service, the"
        " service's prefix.",
        original="JUPYTERHUB_SERVICE_PREFIX",
    )
    data_dir: Path = setting(
        Path(".kernelpad"), "Folder for the SQLite database and kernel runtime files."
    )
    questions_dir: Path | None = setting(
        None,
        "Folder of question notebooks (.ipynb) to start interviews from; default:"
        " DATA_DIR/questions, filled with kernelpad's examples on first start.",
    )
    database_url: str | None = setting(
        None,
        "Where sessions are stored: sqlite:///path, or"
        " postgresql://user:password@host:port/database for several kernelpad processes"
        " (pip install 'kernelpad[postgresql]'); unset: kernelpad.sqlite in DATA_DIR.",
        original="DATABASE_URL",
    )
    startup_wait: float = setting(
        15.0,
        "Seconds the start waits for a database or gateway that does not answer yet (one"
        " starting along with kernelpad), trying again after 0.5, 1, 2, 4, 8, 8, ... s; 0: try"
        " once.",
        ge=0,
        le=86400,
    )
    event_loop: Literal["uvloop", "asyncio"] = setting(
        "uvloop",
        "uvloop (libuv's loop: less CPU for the same sockets), or asyncio (Python's own loop).",
    )
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["text", "json"] = setting(
        "text",
        "text, or json: one JSON object per line, with session_id, language, client_id and role"
        " fields.",
    )
    cors_origins: list[str] = setting(
        [], "Origins allowed to call the API from a browser (JSON list).", original="CORS_ORIGINS"
    )
    allowed_hosts: list[str] = setting(
        [],
        "Host names (of the Host header) kernelpad answers to besides its own (JSON list;"
        ' ["*"]: any). Its own: localhost, any IP address, HOST, and the hosts of'
        " FRONTEND_URL and of the Hub's URLs (JUPYTERHUB_SERVICE_URL, JUPYTERHUB_PUBLIC_URL)."
        " Requests naming any other host are refused: a guard against DNS rebinding. Behind a"
        " proxy that keeps the Host header, list the public name here.",
    )
    admin_token: str | None = setting(
        None,
        "Token ('Authorization: Bearer') that may list every session, with its join link;"
        " unset: nobody can.",
    )
    metrics_token: str | None = setting(
        None,
        "Token Prometheus sends ('Authorization: Bearer') for /metrics; unset: /metrics is open"
        " (it holds counts, never names, code or links).",
    )
    frontend_url: str | None = setting(
        None,
        "Base URL of join links, BASE_URL included; default: the address each request came"
        " to (through a proxy: its Host header).",
        original="FRONTEND_URL",
    )
    max_request_size: int = setting(
        1_048_576,
        "Largest request body or WebSocket message accepted, in bytes (larger: HTTP 413, or the"
        " socket closes with 1009).",
        ge=1024,
    )
    ws_messages_per_second: int = setting(
        100,
        "Messages a WebSocket client may send per second; past it the server reads its"
        " messages more slowly (nothing is dropped) and tells a JSON client with a `throttled`"
        " error.",
        ge=1,
    )
    ws_max_buffered_bytes: int = setting(
        16 * 1_048_576,
        "Bytes sent to a WebSocket client that it may leave unread; past it the connection"
        " closes with 1008 (the client reconnects and catches up).",
        ge=65536,
    )

    # Sessions
    session_id_length: int = setting(
        12, "Length of new session ids.", original="SESSION_ID_LENGTH", ge=8, le=64
    )
    max_session_age_hours: float = setting(
        24.0, "Sessions older than this are ended.", original="MAX_SESSION_AGE_HOURS", gt=0
    )
    max_participants_per_session: int = setting(
        10,
        "Default and upper bound of a session's participants.",
        original="MAX_PARTICIPANTS_PER_SESSION",
        ge=1,
    )
    cull_interval: float = setting(
        60.0, "Seconds between sweeps for expired sessions and idle kernels.", gt=0
    )

    # Execution
    enable_server_execution: bool = setting(
        True, "Allow running code at all.", original="ENABLE_SERVER_EXECUTION"
    )
    code_execution_timeout: float = setting(
        5.0,
        "Longest run in seconds; caps a request's time_limit.",
        original="CODE_EXECUTION_TIMEOUT",
        gt=0,
    )
    input_timeout: float = setting(
        300.0,
        "Longest wait in seconds for someone to answer a run's input request; the wait does"
        " not count toward the run's time limit.",
        gt=0,
    )
    code_max_output_size: int = setting(
        10_000,
        "Characters of stdout plus stderr kept per run.",
        original="CODE_MAX_OUTPUT_SIZE",
        ge=100,
    )
    output_flood_limit: int = setting(
        1_000_000,
        "Characters a run may print past the output cap before it is interrupted.",
        ge=0,
    )
    max_code_size: int = setting(100_000, "Longest code accepted per run, in characters.", ge=1)
    max_cell_size: int = setting(
        200_000,
        "Longest source a notebook cell may have, in characters: an edit past it is undone for"
        " everyone and its author told.",
        ge=1000,
    )
    max_notebook_size: int = setting(
        2_000_000,
        "Most characters a session's notebook may hold (sources and metadata; run outputs have"
        " limits of their own): an edit past it is undone for everyone and its author told.",
        ge=1000,
    )
    rate_limit_executions_per_minute: int = setting(
        60,
        "Runs per participant per minute (0: no limit).",
        original="RATE_LIMIT_EXECUTIONS_PER_MINUTE",
        ge=0,
    )
    execution_queue_size: int = setting(
        4, "Runs that may wait for a busy kernel; more are refused with HTTP 409.", ge=0
    )
    interrupt_grace: float = setting(
        2.0, "Seconds a kernel has to stop after an interrupt before it is restarted.", gt=0
    )

    # Kernels
    languages: list[str] = setting(
        [], "Languages offered, by id (JSON list); empty: every installed kernelspec."
    )
    kernel_pool_size: dict[str, int] = setting(
        {"python": 1, "javascript": 1, "typescript": 1, "java": 1, "cpp": 1},
        "Pre-started kernels kept ready per language (JSON object).",
    )
    kernel_idle_timeout: float = setting(
        1800.0,
        "Seconds a session's kernel may sit idle before it is shut down (0: never).",
        ge=0,
    )
    kernel_start_timeout: float = setting(60.0, "Seconds a kernel has to start.", gt=0)
    kernel_nice: int = setting(
        0,
        "Scheduling niceness of local kernels and their sessions (0-19): when candidates' code"
        " keeps the CPUs busy, the server that every interview shares (typing, outputs) runs"
        " first, and runs wait longer in their kernels. 0: kernels compete with it.",
        ge=0,
        le=19,
    )
    kernels_on_exit: Literal["stop", "keep"] = setting(
        "stop",
        "What a stopping server (SIGTERM, SIGINT) does with its sessions' kernels: stop them,"
        " or keep them for the next server to take back. A server that dies (kill -9, a crash)"
        " always leaves them for the next one.",
    )
    session_lease_seconds: float = setting(
        10.0,
        "Seconds a process's hold on a session lasts unless renewed (every third of it): with"
        " several processes on one database, how long another waits before it takes over the"
        " sessions of one that stopped answering (one on this machine that is gone is not"
        " waited for).",
        gt=0,
    )
    kernel_reattach_grace: float = setting(
        300.0,
        "Seconds a session's local kernel waits for a server to take it back once none holds"
        " it (the server stopped with kernels kept, or died); then it is stopped.",
        ge=0,
    )
    kernel_runtime_dir: Path | None = setting(
        None,
        "Where local kernels keep their connection files and sockets, shared by every"
        " kernelpad of this user on this machine (a short path: Unix sockets' are limited)."
        " Default: the system's temporary folder.",
    )

    # Remote kernels: a Kernel Gateway, an Enterprise Gateway or a Jupyter Server
    gateway_url: str | None = setting(
        None,
        "Run kernels on this gateway (Jupyter Server kernels API) instead of locally.",
        original="JUPYTER_GATEWAY_URL",
    )
    gateway_auth_token: str | None = setting(
        None,
        "Token for the gateway ('Authorization: token ...').",
        original="JUPYTER_GATEWAY_AUTH_TOKEN",
    )
    gateway_headers: dict[str, str] = setting(
        {}, "Extra headers for the gateway (JSON object).", original="JUPYTER_GATEWAY_HEADERS"
    )
    gateway_request_timeout: float = setting(
        60.0,
        "Seconds a gateway request may take.",
        gt=0,
        original="JUPYTER_GATEWAY_REQUEST_TIMEOUT",
    )
    gateway_connect_timeout: float = setting(
        10.0,
        "Seconds to connect to the gateway.",
        gt=0,
        original="JUPYTER_GATEWAY_CONNECT_TIMEOUT",
    )
    gateway_validate_cert: bool = setting(
        True, "Check the gateway's TLS certificate.", original="JUPYTER_GATEWAY_VALIDATE_CERT"
    )
    gateway_kernel_username: str = setting(
        "kernelpad",
        "KERNEL_USERNAME sent with each kernel (Enterprise Gateway requires one, not root).",
    )

    # JupyterHub: kernelpad as a Hub service, interviewers logged in by the Hub
    jupyterhub_login: bool | None = setting(
        None,
        "Interviewers log in through JupyterHub (OAuth) to start interviews; default: on when"
        " kernelpad runs as a Hub service (JUPYTERHUB_API_TOKEN is set).",
    )
    cookie_secret: str = setting(
        "",
        "Secret (hex) that signs login cookies; give every kernelpad process behind one proxy"
        " the same. Default: a new one at each start (logins then last until a restart).",
    )

    # The sandbox of every kernel (see SECURITY.md)
    sandbox: bool = setting(
        True,
        "Run every kernel in bubblewrap as SANDBOX_USER, without network or access to the"
        " server's files. Off only where all code run is trusted.",
    )
    sandbox_user: str = setting(
        "kernelpad-kernel", "The unprivileged user kernels run as ('make' creates it)."
    )
    kernel_memory_limit_mb: int = setting(1024, "Memory one kernel may use, in MiB.", ge=64)
    kernel_max_processes: int = setting(
        256, "Processes and threads one kernel may have at a time.", ge=16
    )
    kernel_cpu_time_limit: int = setting(
        3600, "CPU seconds each process of a kernel may use; then it is killed.", ge=10
    )
    kernel_max_file_size_mb: int = setting(64, "Largest file a kernel may write, in MiB.", ge=1)
    kernel_max_open_files: int = setting(1024, "Files a kernel may have open at once.", ge=64)
    kernel_tmp_size_mb: int = setting(
        256, "Size of a kernel's private /tmp (its home and working folder), in MiB.", ge=16
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("base_url")
    @classmethod
    def _a_path(cls, value: str) -> str:
        if not value.startswith("/") or "//" in value or "?" in value or "#" in value:
            raise ValueError(f"base_url must be a path such as /services/kernelpad/, not {value!r}")
        return value.rstrip("/") + "/"

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        names = [name.strip().lower() for name in value]
        for name in names:
            if not name or any(ch in name for ch in "/?#@ "):
                raise ValueError(
                    f"allowed_hosts takes host names such as pad.example.com, not {name!r}"
                )
        return names

    @field_validator("cookie_secret")
    @classmethod
    def _hex_secret(cls, value: str) -> str:
        if not value:
            return secrets.token_hex(32)
        try:
            strong = len(bytes.fromhex(value)) >= 32
        except ValueError:
            strong = False
        if not strong:
            raise ValueError("cookie_secret must be at least 32 bytes in hex (64 characters)")
        return value

    @model_validator(mode="after")
    def _as_hub_service(self) -> Settings:
        # A managed Hub service is told where to listen in JUPYTERHUB_SERVICE_URL; HOST and
        # PORT, when given, still win.
        service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        if service_url:
            where = urlsplit(service_url)
            if "host" not in self.model_fields_set and where.hostname:
                self.host = where.hostname
            if "port" not in self.model_fields_set and where.port:
                self.port = where.port
        if self.jupyterhub_login is None:
            self.jupyterhub_login = bool(os.environ.get("JUPYTERHUB_API_TOKEN"))
        return self

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value:
            database_from_url(value)  # raises ValueError, saying what is wrong
        return value

    @field_validator("kernel_pool_size")
    @classmethod
    def _non_negative_pools(cls, value: dict[str, int]) -> dict[str, int]:
        for language, size in value.items():
            if size < 0:
                raise ValueError(f"pool size of {language!r} is negative")
        return value

    @property
    def questions_path(self) -> Path:
        return self.questions_dir or self.data_dir / "questions"

    @property
    def database_path(self) -> Path:
        """The SQLite file used when DATABASE_URL is unset."""
        return self.data_dir / "kernelpad.sqlite"


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables a field answers to, most specific first."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    names = [PREFIX + name.upper()]
    if extra.get("original"):
        names.append(str(extra["original"]))
    return names


def _attach_aliases() -> None:
    # pydantic-settings applies env_prefix only to fields without an alias; since some fields also
    # answer to an original name, every field gets its explicit list of names instead.
    for name, field in Settings.model_fields.items():
        field.validation_alias = AliasChoices(*env_names(name, field), name)
    Settings.model_rebuild(force=True)


_attach_aliases()
