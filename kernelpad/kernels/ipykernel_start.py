"""Start an ipykernel-based kernel without the modules an interview's kernel never uses.

Run as ``python -m kernelpad.kernels.ipykernel_start MODULE ARGS...``: the imports are made lean,
then MODULE runs as ``python -m MODULE ARGS...`` would run it. The Python kernelspec runs
``ipykernel_launcher`` so; kernelpad's C++ kernel calls :func:`lean_imports` itself.

What an import leaves in a kernel stays for the kernel's whole life, in every kernel, and
``bench/kernel_memory.py`` counts it: this is the part of an idle kernel's memory that is
ipykernel's choice rather than the user's.

* **debugpy** (and the pydevd it vendors, 8 MiB): ipykernel imports it at its start when it can,
  for a debugger kernelpad never asks for. Made unimportable, ipykernel runs without one.
* **jupyter_client's package** (36 modules, 1.5 MiB): ``import jupyter_client`` runs its
  ``__init__``, which imports the client and manager side of Jupyter too: kernelspecs,
  provisioners and their entry points, launchers, kernel managers. A kernel uses its ``session``,
  ``connect`` and ``jsonutil`` modules, which it imports by their names; it asks the package
  itself for ``connect``'s functions (``write_connection_file``, ``find_connection_file``),
  ``__version__`` and, as the default of a trait it does not use, ``BlockingKernelClient``. The
  package is put in place without running its ``__init__``: those names come from the module
  that defines them, and any other name runs the whole ``__init__`` first, so code in the kernel
  that uses the package sees it as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import runpy
import sys
from types import ModuleType

# The names ipykernel asks jupyter_client's package for, and the module each comes from; and the
# module whose every public name (its ``__all__``) the package takes as its own.
JUPYTER_CLIENT_NAMES = {
    "__version__": "_version",
    "version_info": "_version",
    "protocol_version": "_version",
    "protocol_version_info": "_version",
    "BlockingKernelClient": "blocking",
    "AsyncKernelClient": "asynchronous",
    "KernelClient": "client",
}
JUPYTER_CLIENT_ALL_OF = ("connect",)


def lean_imports() -> None:
    """Make debugpy unimportable and jupyter_client's package import only what is used of it."""
    sys.modules["debugpy"] = None  # type: ignore[assignment]
    lazy_package("jupyter_client", JUPYTER_CLIENT_NAMES, JUPYTER_CLIENT_ALL_OF)


def lazy_package(
    name: str, names: dict[str, str], all_of: tuple[str, ...] = ()
) -> ModuleType | None:
    """Put package ``name`` in ``sys.modules`` without running its ``__init__`` yet.

    Its submodules import as usual (the package has its ``__path__``). A name of ``names`` is
    taken from its submodule, a name in the ``__all__`` of a submodule of ``all_of`` from that
    one; any other name first runs the ``__init__`` in the package, which then is what a plain
    import would have made. Returns the package, or None where it is already imported or not
    installed.
    """
    if name in sys.modules:
        return None
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return None
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def home_of(attr: str) -> str | None:
        """The submodule ``attr`` is taken from alone, if it is one of those names."""
        if attr in names:
            return names[attr]
        for submodule in all_of:
            if attr in getattr(importlib.import_module(f"{name}.{submodule}"), "__all__", ()):
                return submodule
        return None

    def attribute(attr: str) -> object:
        home = home_of(attr)
        if home is None:
            # Anything else, ``__all__`` for ``import *`` included: the package as it is.
            del package.__getattr__
            loader.exec_module(package)
            return getattr(package, attr)
        value = getattr(importlib.import_module(f"{name}.{home}"), attr)
        setattr(package, attr, value)
        return value

    package.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules[name] = package
    return package


def main() -> None:
    lean_imports()
    del sys.argv[0]  # this module's path: MODULE's own takes its place, as with ``-m MODULE``
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
