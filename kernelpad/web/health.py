"""GET /api/v1/health: liveness, with what the server is holding."""

from __future__ import annotations

import time

from kernelpad import __version__
from kernelpad.sessions.models import ACTIVE
from kernelpad.web.base import ApiHandler, operation
from kernelpad.web.server_schemas import HealthOut


class HealthHandler(ApiHandler):
    @operation("Liveness and load", responses={200: HealthOut}, tags=("server",))
    async def get(self) -> None:
        manager = self.manager
        self.respond(
            HealthOut(
                status="ok",
                app_name=self.kp_settings.app_name,
                version=__version__,
                sessions_active=await manager.store.count_sessions(ACTIVE),
                kernels_running=manager.runs.kernels_running,
                kernels_pooled=manager.pool.ready_count,
                executions_running=manager.runs.running,
                executions_queued=manager.runs.queued,
                uptime_seconds=round(time.monotonic() - self.application.settings["started"], 3),
                # Kernels on a gateway are the gateway's to contain.
                sandbox=self.kp_settings.sandbox and not self.kp_settings.gateway_url,
            )
        )
