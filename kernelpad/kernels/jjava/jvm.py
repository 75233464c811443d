"""JJava's JVM as kernelpad starts it: its options, its command line, and kernelpad's shell
channel for it (``ShellChannel.java``, compiled at install against the installed jar)."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

# Measured here: the JVM starts in about 2.3 s instead of 4.2 s, runs take about 90 ms, not 130
# (C1 only, the serial collector). The heap starts at 16 MiB and is given back once free
# (a JVM's default starts it at 1/64 of the machine's memory, 384 MiB here, whose young
# generation an idle kernel's allocations touch page by page): the idle kernel's RSS goes from
# 189 to 123 MiB, runs as fast. Its maximum is not set here: the sandbox sets it (half the
# kernel's memory limit, -Xmx512m by default), else the JVM's default (a quarter of the memory).
# Without its performance counters (jstat's: nobody reads them in a box), the JVM's periodic
# task thread no longer wakes 20 times a second to sample them.
JJAVA_JVM_OPTS = (
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xms16m",
    "-XX:MinHeapFreeRatio=10",
    "-XX:MaxHeapFreeRatio=30",
    "-XX:-UsePerfData",
)
# What JJava's launcher adds before the kernel's jar (jjava-launcher 1.0's KernelLauncher).
JJAVA_LAUNCHER_OPTS = ("--add-opens", "jdk.jshell/jdk.jshell=ALL-UNNAMED")


def find_java_home() -> Path | None:
    """The JDK to pin: JAVA_HOME if set, else the one ``javac`` on PATH belongs to."""
    if os.environ.get("JAVA_HOME") and (Path(os.environ["JAVA_HOME"]) / "bin" / "java").is_file():
        return Path(os.environ["JAVA_HOME"])
    javac = shutil.which("javac")
    if javac is None:
        return None
    return Path(javac).resolve().parent.parent


# JJava's shell and control channels look at their socket without waiting, then sleep 50 ms,
# after a request too: each request waited 0-50 ms before the kernel saw it (a trivial run, 20
# ms of JShell's work, took 70 back to back; a kernel_info_request 52) and an idle kernel's two
# threads woke 40 times a second. kernelpad's copy of the class (ShellChannel.java, beside
# this module) waits in its poll instead; it is compiled against the installed jar, and the
# kernel's class path puts it first. A jar it does not compile against (JJava changed, say)
# runs as it is.
JJAVA_SHELL_CHANNEL = Path(__file__).resolve().parent / "ShellChannel.java"
SHELL_CHANNEL_CLASS = "org.dflib.jjava.jupyter.channels.ShellChannel"


@dataclass(frozen=True)
class JJavaShell:
    """kernelpad's shell channel for JJava, compiled: its class folder, and the jar's main
    class (which ``-jar`` would have read from the jar's manifest)."""

    folder: Path
    main_class: str


def jjava_shell_channel(jdk: Path, jar: Path, folder: Path) -> JJavaShell | None:
    """kernelpad's ShellChannel compiled with the JDK's tools (``jdk``, its ``bin`` folder)
    against ``jar`` into ``folder``; None (and no folder) where the jar has no main class, seals
    its packages, or the class does not compile or lacks a member of the jar's own (which the
    jar's other classes would call)."""
    manifest = _manifest(jar)
    main_class = manifest.get("Main-Class")
    shutil.rmtree(folder, ignore_errors=True)
    # A sealed package takes no class from elsewhere: the kernel's JVM would not start.
    if main_class is None or manifest.get("Sealed", "").lower() == "true":
        return None
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    compile_it = [str(jdk / "javac"), "-nowarn", "-encoding", "UTF-8", "-d", str(partial)]
    compiled = _tool([*compile_it, "-cp", str(jar), str(JJAVA_SHELL_CHANNEL)]) is not None
    if not compiled or not _members(jdk, jar) <= _members(jdk, partial):
        shutil.rmtree(partial, ignore_errors=True)
        return None
    partial.replace(folder)
    return JJavaShell(folder, main_class)


def _members(jdk: Path, classpath: Path) -> set[str]:
    """What ShellChannel on ``classpath`` offers other classes (its members but the private
    ones, as javap lists them); empty if there is none."""
    listed = _tool([str(jdk / "javap"), "-cp", str(classpath), SHELL_CHANNEL_CLASS]) or ""
    return {line.strip() for line in listed.splitlines() if line.startswith("  ")}


def _tool(command: list[str]) -> str | None:
    """What a JDK tool printed, or None if it failed or is not there."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def _manifest(jar: Path) -> dict[str, str]:
    """The main section of a jar's manifest (continuation lines joined)."""
    try:
        with zipfile.ZipFile(jar) as archive:
            text = archive.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return {}
    main = text.replace("\r\n", "\n").split("\n\n", 1)[0].replace("\n ", "")
    return dict(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in main.splitlines())
        if value
    )


def java_argv(java: Path, shell: JJavaShell | None = None) -> list[str]:
    """The kernel's JVM, started as JJava's launcher would start it, without the launcher, and
    with kernelpad's shell channel before the jar's where there is one."""
    if shell is None:
        program = ["-jar", "{resource_dir}/jjava.jar"]
    else:
        program = ["-cp", f"{shell.folder}:{{resource_dir}}/jjava.jar", shell.main_class]
    return [str(java), *JJAVA_JVM_OPTS, *JJAVA_LAUNCHER_OPTS, *program, "{connection_file}"]
