"""kernelpad.kernels.ipykernel_start: an ipykernel starts without debugpy and without the manager
side of jupyter_client, and code in the kernel that uses jupyter_client's package still finds it
whole. Each case runs in a Python of its own: what it checks is what a process imports."""

from __future__ import annotations

import json
import subprocess
import sys

# The parts of jupyter_client a kernel does not use, which its package's __init__ imports.
MANAGER_SIDE = [
    "jupyter_client.manager",
    "jupyter_client.kernelspec",
    "jupyter_client.provisioning",
    "jupyter_client.multikernelmanager",
    "jupyter_client.launcher",
    "importlib.metadata",
]


def run(code: str, lean: bool = True) -> dict[str, object]:
    """Runs ``code`` in a new Python (after lean_imports() when ``lean``); ``code`` puts what it
    found in ``out``, printed back as JSON."""
    boot = "from kernelpad.kernels.ipykernel_start import lean_imports; lean_imports()\n"
    program = f"import json, sys\nout = {{}}\n{boot if lean else ''}{code}\nprint(json.dumps(out))"
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_a_kernel_application_imports_none_of_the_manager_side_nor_debugpy() -> None:
    found = run(
        "from ipykernel.kernelapp import IPKernelApp\n"
        "import ipykernel.debugger\n"
        "app = IPKernelApp()\n"  # resolves its traits, BlockingKernelClient's default included
        "out['client'] = app.blocking_class.__name__\n"
        "out['debugger'] = ipykernel.debugger._is_debugpy_available\n"
        "import jupyter_client\n"
        "out['version'] = jupyter_client.__version__\n"
        # What ipykernel's connect module asks the package for as a kernel starts.
        "from jupyter_client import find_connection_file, write_connection_file\n"
        f"out['loaded'] = [m for m in {MANAGER_SIDE!r} if m in sys.modules]\n"
    )
    assert found["client"] == "BlockingKernelClient"
    assert found["debugger"] is False
    assert found["loaded"] == []
    plain = run("import jupyter_client\nout['v'] = jupyter_client.__version__", lean=False)
    assert found["version"] == plain["v"]


def test_the_package_is_whole_for_whoever_asks_it_for_more() -> None:
    names = (
        "import jupyter_client\n"
        "out['names'] = sorted(n for n in vars(jupyter_client) if not n.startswith('_'))\n"
    )
    plain = run(names, lean=False)
    asked = run(
        f"from jupyter_client import KernelManager\nout['km'] = KernelManager.__module__\n{names}"
    )
    assert asked["km"] == "jupyter_client.manager"
    assert asked["names"] == plain["names"]
    assert "AsyncKernelManager" in str(plain["names"])
    starred = run("from jupyter_client import *\nout['names'] = [n for n in dir() if n[0] != '_']")
    assert {"KernelManager", "run_kernel"} <= set(starred["names"])  # type: ignore[call-overload]


def test_an_imported_or_missing_package_is_left_as_it_is() -> None:
    found = run(
        "from kernelpad.kernels.ipykernel_start import lazy_package\n"
        "out['again'] = lazy_package('jupyter_client', {})\n"
        "out['missing'] = lazy_package('no_such_package_here', {})\n",
    )
    assert found == {"again": None, "missing": None}
