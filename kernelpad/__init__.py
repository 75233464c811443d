"""kernelpad: live coding interviews on real Jupyter kernels."""

__version__ = "0.1.0"
