"""Remote kernels over the Jupyter Server kernels REST and WebSocket API: a Jupyter Kernel
Gateway, an Enterprise Gateway, or any Jupyter Server (``KERNELPAD_GATEWAY_URL``)."""
