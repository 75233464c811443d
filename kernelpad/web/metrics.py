"""``GET /metrics``: kernelpad's counters and present state, for Prometheus."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST

from kernelpad.errors import Forbidden, NotAuthenticated
from kernelpad.metrics import exposition
from kernelpad.web.base import ApiHandler


class MetricsHandler(ApiHandler):
    """Open unless METRICS_TOKEN is set: it holds counts, never names, code or links."""

    async def get(self) -> None:
        required = self.kp_settings.metrics_token
        if required:
            token = self.bearer_token()
            if not token:
                raise NotAuthenticated(
                    "/metrics needs the metrics token ('Authorization: Bearer <METRICS_TOKEN>')."
                )
            if not hmac.compare_digest(token.encode(), required.encode()):
                raise Forbidden("That is not the metrics token.")
        body = exposition(await self.manager.snapshot())
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)
