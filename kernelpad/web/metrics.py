"""``GET /metrics``: kernelpad's counters and present state, for Prometheus."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from kernelpad.metrics import exposition
from kernelpad.web.base import ApiHandler


class MetricsHandler(ApiHandler):
    """Open unless METRICS_TOKEN is set: it holds counts, never names, code or links."""

    async def get(self) -> None:
        required = self.kp_settings.metrics_token
        if required:
            self.require_token(required, "METRICS_TOKEN", "/metrics")
        body = exposition(await self.manager.snapshot())
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)
