"""Which kernelspecs become languages: known ones, any other installed one, missing programs,
and the allow-list. Real kernelspec folders on disk, read by jupyter_client."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from kernelpad.errors import LanguageUnavailable, UnknownLanguage
from kernelpad.kernels.languages import LanguageRegistry


def write_spec(root: Path, name: str, **spec: object) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec))


@pytest.fixture
def kernels_dir(tmp_path: Path) -> Path:
    root = tmp_path / "kernels"
    write_spec(
        root,
        "python3",
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name="Python 3",
        language="python",
    )
    write_spec(
        root,
        "ir",
        argv=[sys.executable, "-c", "pass", "{connection_file}"],
        display_name="R 4.4",
        language="R",
    )
    write_spec(
        root,
        "java",
        argv=["/nonexistent/jdk/bin/java", "-jar", "{connection_file}"],
        display_name="Java (jjava)",
        language="java",
        interrupt_mode="message",
    )
    return root


async def registry_of(kernels_dir: Path, allow: tuple[str, ...] = ()) -> LanguageRegistry:
    registry = LanguageRegistry(KernelSpecManager(kernel_dirs=[str(kernels_dir)]), allow=allow)
    await registry.refresh()
    return registry


async def test_known_and_other_kernelspecs_become_languages(kernels_dir: Path) -> None:
    registry = await registry_of(kernels_dir)
    ids = [item.language.id for item in registry.installed()]
    assert ids == ["python", "javascript", "typescript", "java", "cpp", "ir"]
    python = registry.get("python")
    assert python.transport == "ipc" and python.interrupt_mode == "signal"
    other = registry.get("ir")
    assert other.language.display_name == "R 4.4"
    assert other.language.template.startswith("# R 4.4: write your solution here")
    assert other.transport == "tcp"


async def test_missing_kernelspecs_and_programs_are_unavailable_with_a_reason(
    kernels_dir: Path,
) -> None:
    registry = await registry_of(kernels_dir)
    java = registry.describe("java")
    assert not java.available
    assert "needs '/nonexistent/jdk/bin/java', which is not installed" in (
        java.unavailable_reason or ""
    )
    with pytest.raises(LanguageUnavailable, match="Java is not available on this server"):
        registry.get("java")
    deno = registry.describe("javascript")
    assert not deno.available and "no kernelspec 'deno'" in (deno.unavailable_reason or "")
    with pytest.raises(UnknownLanguage, match="python, ir"):
        registry.get("cobol")


async def test_allow_list_limits_the_languages(kernels_dir: Path) -> None:
    registry = await registry_of(kernels_dir, allow=("python",))
    assert [item.language.id for item in registry.installed()] == ["python"]
    with pytest.raises(UnknownLanguage):
        registry.get("ir")


async def test_a_broken_kernelspec_does_not_hide_the_others(kernels_dir: Path) -> None:
    (kernels_dir / "broken").mkdir()
    (kernels_dir / "broken" / "kernel.json").write_text("{not json")
    registry = await registry_of(kernels_dir)
    assert registry.get("python").available


async def test_a_program_a_kernel_requires_is_checked_too(kernels_dir: Path) -> None:
    write_spec(
        kernels_dir,
        "cpp",
        argv=[sys.executable, "-m", "kernelpad.kernels.cpp", "-f", "{connection_file}"],
        display_name="C++17 (clang-repl)",
        language="c++",
        metadata={"kernelpad": {"transport": "ipc", "requires": ["/nowhere/clang-repl"]}},
    )
    cpp = (await registry_of(kernels_dir)).describe("cpp")
    assert not cpp.available
    assert "'/nowhere/clang-repl'" in (cpp.unavailable_reason or "")
    assert cpp.transport == "ipc"


def test_the_python_start_up_code_compiles() -> None:
    """It runs silently in every new kernel: a mistake in it (a string broken by an escape)
    fails the whole of it, and sys.stdin, say, stays unreadable, with no error anywhere."""
    from kernelpad.kernels.languages import PYTHON_STARTUP

    compile(PYTHON_STARTUP, "python start-up", "exec")
