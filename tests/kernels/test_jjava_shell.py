"""kernelpad's shell channel for JJava (``kernelpad/kernels/jjava/ShellChannel.java``):
compiled at install against the installed jar, put before the jar's own class on the kernel's
class path, and left out (JJava as it is) wherever it cannot be used. That the kernel runs it,
and waits in its poll, is tested on a real kernel in tests/test_languages.py."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from kernelpad.kernels import install
from kernelpad.kernels.jjava import jvm
from kernelpad.kernels.jjava.jvm import JJavaShell, java_argv, jjava_shell_channel

JAR = install.kernels_dir(Path(sys.prefix)) / "java" / "jjava.jar"
JAVA_HOME = jvm.find_java_home()
needs_jjava = pytest.mark.skipif(
    JAVA_HOME is None or not JAR.is_file(), reason="no JDK or no JJava here: make installs both"
)


def jdk() -> Path:
    assert JAVA_HOME is not None
    return JAVA_HOME / "bin"


def jar_with(tmp_path: Path, manifest: str) -> Path:
    jar = tmp_path / "other.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", manifest)
    return jar


@needs_jjava
def test_the_shell_channel_compiles_against_the_installed_jar(tmp_path: Path) -> None:
    shell = jjava_shell_channel(jdk(), JAR, tmp_path / "jjava")
    assert shell == JJavaShell(tmp_path / "jjava", "org.dflib.jjava.distro.JJava")
    compiled = shell.folder / "org" / "dflib" / "jjava" / "jupyter" / "channels"
    assert [p.name for p in compiled.iterdir()] == ["ShellChannel.class"]
    assert not (tmp_path / "jjava.partial").exists()


@needs_jjava
def test_a_jar_it_does_not_compile_against_runs_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An earlier install's classes go too: the kernel must not run them with another jar.
    assert jjava_shell_channel(jdk(), JAR, tmp_path / "jjava") is not None
    source = tmp_path / "ShellChannel.java"
    source.write_text("package org.dflib.jjava.jupyter.channels;\nclass Gone extends Missing {}\n")
    monkeypatch.setattr(jvm, "JJAVA_SHELL_CHANNEL", source)
    assert jjava_shell_channel(jdk(), JAR, tmp_path / "jjava") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ShellChannel.java"]


@needs_jjava
def test_a_class_that_lacks_a_member_of_the_jars_own_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It compiles, but JJava's connection would not find the constructor it calls.
    source = tmp_path / "ShellChannel.java"
    source.write_text("package org.dflib.jjava.jupyter.channels;\npublic class ShellChannel {}\n")
    monkeypatch.setattr(jvm, "JJAVA_SHELL_CHANNEL", source)
    assert jjava_shell_channel(jdk(), JAR, tmp_path / "jjava") is None
    assert not (tmp_path / "jjava").exists() and not (tmp_path / "jjava.partial").exists()


@needs_jjava
def test_a_jdk_without_its_compiler_leaves_jjava_as_it_is(tmp_path: Path) -> None:
    assert jjava_shell_channel(tmp_path / "jre" / "bin", JAR, tmp_path / "jjava") is None
    assert not (tmp_path / "jjava").exists()


@pytest.mark.parametrize(
    "manifest",
    [
        "Manifest-Version: 1.0\n\n",  # no main class: -jar would not run it either
        "Manifest-Version: 1.0\nMain-Class: org.dflib.jjava.distro.JJava\nSealed: true\n\n",
    ],
)
def test_a_jar_without_a_main_class_or_with_sealed_packages_runs_as_it_is(
    tmp_path: Path, manifest: str
) -> None:
    # A sealed package takes no class from another folder: the JVM would refuse to start.
    assert jjava_shell_channel(tmp_path, jar_with(tmp_path, manifest), tmp_path / "j") is None
    assert not (tmp_path / "j").exists()


def test_the_main_class_is_read_as_the_jvm_reads_it(tmp_path: Path) -> None:
    # Lines of at most 72 bytes: a long value goes on in lines that start with a space.
    manifest = (
        "Manifest-Version: 1.0\r\nMain-Class: org.example.a.very.long.package.name.th\r\n"
        " at.Goes.On\r\n\r\nName: x\r\nMain-Class: not.This\r\n"
    )
    assert jvm._manifest(jar_with(tmp_path, manifest)) == {
        "Manifest-Version": "1.0",
        "Main-Class": "org.example.a.very.long.package.name.that.Goes.On",
    }
    assert jvm._manifest(tmp_path / "missing.jar") == {}


def test_the_kernel_starts_its_main_class_with_the_shell_channel_first() -> None:
    shell = JJavaShell(Path("/venv/share/kernelpad/jjava"), "org.dflib.jjava.distro.JJava")
    argv = java_argv(Path("/jdk/bin/java"), shell)
    assert argv[-4:] == [
        "-cp",
        "/venv/share/kernelpad/jjava:{resource_dir}/jjava.jar",
        "org.dflib.jjava.distro.JJava",
        "{connection_file}",
    ]
    assert argv[:-4] == java_argv(Path("/jdk/bin/java"))[:-3]
