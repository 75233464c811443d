from ipykernel.kernelapp import IPKernelApp

from kernelpad.kernels.cpp.kernel import CppKernel

IPKernelApp.launch_instance(kernel_class=CppKernel)
