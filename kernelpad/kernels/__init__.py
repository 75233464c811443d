"""Local kernels: languages and kernelspecs, the pool, execution with limits."""
