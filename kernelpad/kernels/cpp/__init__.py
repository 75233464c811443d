"""kernelpad's C++ kernel: C++17 on clang-repl, with state across cells.

Run as ``python -m kernelpad.kernels.cpp -f <connection file>`` (its kernelspec, ``cpp``, is
written by ``python -m kernelpad.kernels.install``).
"""
