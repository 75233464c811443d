from kernelpad.kernels.ipykernel_start import lean_imports

# Before ipykernel is imported: no debugger, and of jupyter_client only what a kernel uses.
lean_imports()

from ipykernel.kernelapp import IPKernelApp  # noqa: E402

from kernelpad.kernels.cpp.kernel import CppKernel  # noqa: E402

IPKernelApp.launch_instance(kernel_class=CppKernel)
