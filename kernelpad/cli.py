"""The ``kernelpad`` command: every setting as a flag, with its environment names in --help."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence

import pydantic

from kernelpad import __version__, logs
from kernelpad.config import Settings, env_names
from kernelpad.server import CannotListen, NoGateway, NoHub, NoRuntimeDir, NoSandbox, serve
from kernelpad.sessions.storage.database import DatabaseUnavailable
from kernelpad.sessions.storage.migrations import SchemaTooNew


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernelpad",
        description="Live coding interviews on real Jupyter kernels. Every option can also be"
        " set in the environment or a .env file, under the names shown.",
    )
    parser.add_argument("--version", action="version", version=f"kernelpad {__version__}")
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, (list, dict)):
            default = json.dumps(default)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            metavar=name.upper(),
            default=argparse.SUPPRESS,
            help=f"{field.description} [env: {', '.join(env_names(name, field))};"
            f" default: {default}]",
        )
    return parser


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """Settings from flags over environment over ``.env``; exits with a message if invalid."""
    parser = build_parser()
    flags = vars(parser.parse_args(argv))
    for name, value in flags.items():
        if Settings.model_fields[name].annotation in (list[str], dict[str, int]):
            try:
                flags[name] = json.loads(value)
            except ValueError:
                parser.error(f"--{name.replace('_', '-')} takes JSON, got {value!r}")
    try:
        return Settings(**flags)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        parser.error(f"invalid settings: {problems}")


def loop_factory(
    name: str = Settings.model_fields["event_loop"].default,
) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop ``EVENT_LOOP`` names; without a name, the setting's default (the tests
    and the benchmarks' floors run on it too). uvloop by default: every interview's sockets,
    the kernels' ZeroMQ sockets and the database thread's wake-ups go through one loop, and
    libuv's costs less CPU for them than Python's selector loop (``bench/README.md``)."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            sys.exit(
                "kernelpad: uvloop is not installed: pip install uvloop, or --event-loop asyncio"
            )
        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main(argv: Sequence[str] | None = None) -> None:
    settings = load_settings(argv)
    logs.configure(settings.log_level, settings.log_format)
    # jupyter_core warns on every run until this is the default; the new paths are what we want.
    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    try:
        with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings))
    except (
        CannotListen,
        NoGateway,
        NoHub,
        NoSandbox,
        NoRuntimeDir,
        DatabaseUnavailable,
        SchemaTooNew,
    ) as exc:
        sys.exit(f"kernelpad: {exc}")
