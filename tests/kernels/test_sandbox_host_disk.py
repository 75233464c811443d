"""A sandboxed kernel writes nowhere on the host's disk but its own /tmp, which has a size: not
into its connection files, nor through the stdout and stderr it was started with, which the
server reads. Each run here is untrusted code trying."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kernelpad.config import Settings
from tests.conftest import Api, make_settings

MIB = 2**20
# What the runtime folder (every kernel's connection files and sockets, the server's pid) may
# grow by while kernels try to write many MiB there.
BOUND = MIB


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1, "javascript": 1},
        code_execution_timeout=60,
        kernel_max_file_size_mb=16,
    )


@pytest.fixture
async def session(api: Api) -> str:
    return str((await api.create_session())["session_id"])


async def run(api: Api, session: str, code: str, language: str = "python") -> dict[str, Any]:
    return await api.execute(session, code, language=language)


def size_of(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                stat = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            total += max(stat.st_size, stat.st_blocks * 512)
    return total


async def runtime_folder(api: Api, session: str) -> Path:
    code = (
        "from ipykernel.kernelapp import IPKernelApp\n"
        "print(IPKernelApp.instance().connection_file)\n"
    )
    body = await run(api, session, code)
    # The kernel's folder is bound at its own path: its parent is the server's runtime folder.
    return Path(body["stdout"].strip()).parent.parent


async def test_a_python_kernel_cannot_fill_the_hosts_disk(api: Api, session: str) -> None:
    folder = await runtime_folder(api, session)
    before = size_of(folder)
    code = (
        "import os, subprocess, sys\n"
        "from ipykernel.kernelapp import IPKernelApp\n"
        "try:\n"
        "    with open(IPKernelApp.instance().connection_file, 'ab') as f:\n"
        "        for _ in range(4):\n"
        "            f.write(b' ' * 2**20)\n"
        "            f.flush()\n"
        "    print('connection file written')\n"
        "except OSError as exc:\n"
        "    print('connection file refused', type(exc).__name__)\n"
        # ipykernel reads what the process writes to its descriptors 1 and 2 through pipes of
        # its own (and copies it to the originals); the originals, as the kernel was started
        # with them, are kept as these.
        "for stream in (sys.stdout, sys.stderr):\n"
        "    fd = stream._original_stdstream_copy\n"
        "    done = subprocess.run(['head', '-c', str(4 * 2**20), '/dev/zero'], stdout=fd,\n"
        "                          timeout=30)\n"
        "    kind = os.readlink(f'/proc/self/fd/{fd}').split(':')[0]\n"
        "    print('descriptor', kind, done.returncode)\n"
    )
    body = await run(api, session, code)
    grown = size_of(folder) - before
    assert grown < BOUND, f"the host's runtime folder grew by {grown} bytes: {body}"
    assert body["stdout"].splitlines() == [
        "connection file refused PermissionError",
        "descriptor pipe 0",
        "descriptor pipe 0",
    ], body


async def test_a_deno_kernel_cannot_fill_the_hosts_disk(api: Api, session: str) -> None:
    folder = await runtime_folder(api, session)
    before = size_of(folder)
    code = (
        "const chunk = new Uint8Array(1 << 20);\n"
        "function fill(file) {\n"
        "  for (let i = 0; i < 4; i++) {\n"
        "    let n = 0;\n"
        "    while (n < chunk.length) n += file.writeSync(chunk.subarray(n));\n"
        "  }\n"
        "}\n"
        # Its own connection file, which its keeper wrote for it.
        "const args = Deno.readTextFileSync('/proc/self/cmdline').split('\\0');\n"
        "const conn = args[args.indexOf('--conn') + 1];\n"
        "try {\n"
        "  const file = Deno.openSync(conn, { append: true });\n"
        "  fill(file);\n"
        "  file.close();\n"
        "  console.log('connection file written');\n"
        "} catch (e) {\n"
        "  console.log('connection file refused', e.name);\n"
        "}\n"
        # Deno.stdout and the processes Deno starts write to the notebook, and the descriptors'
        # files cannot be opened again: libc's write() reaches the descriptors themselves.
        "const libc = Deno.dlopen('libc.so.6', {\n"
        "  write: { parameters: ['i32', 'buffer', 'usize'], result: 'isize' } });\n"
        "for (const fd of [1, 2]) {\n"
        "  fill({ writeSync: (part) => Number(libc.symbols.write(fd, part, part.length)) });\n"
        "  console.log('flooded', Deno.readLinkSync(`/proc/self/fd/${fd}`).split(':')[0]);\n"
        "}\n"
    )
    body = await run(api, session, code, "javascript")
    grown = size_of(folder) - before
    assert grown < BOUND, f"the host's runtime folder grew by {grown} bytes: {body}"
    assert body["stdout"].splitlines() == [
        "connection file refused PermissionDenied",
        "flooded pipe",
        "flooded pipe",
    ], body
