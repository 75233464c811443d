import sys

# ipykernel imports debugpy (and pydevd) at its start when it can: 8 MiB of the idle kernel's
# RSS for a Python debugger, of no use to a C++ kernel.
sys.modules["debugpy"] = None  # type: ignore[assignment]

from ipykernel.kernelapp import IPKernelApp  # noqa: E402

from kernelpad.kernels.cpp.kernel import CppKernel  # noqa: E402

IPKernelApp.launch_instance(kernel_class=CppKernel)
