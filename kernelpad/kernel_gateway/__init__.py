"""Remote kernels over the Jupyter Server kernels REST and WebSocket API (not built yet)."""
