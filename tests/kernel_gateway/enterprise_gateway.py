"""kernelpad on a real Jupyter Enterprise Gateway, in a virtualenv of its own (Enterprise
Gateway 3.x pins ``jupyter-client<7``, which kernelpad cannot share).

Not part of ``make test`` (it installs a second virtualenv): ``make test-enterprise-gateway``
makes ``.venv-eg`` and runs this module, which starts the gateway from there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api

# The same server settings as on a Kernel Gateway (kernelpad sends KERNEL_USERNAME, without
# which Enterprise Gateway refuses to start kernels for root); this module's gateway fixture
# is the Enterprise Gateway.
from tests.kernel_gateway.test_gateway import TOKEN, Gateway, server_settings  # noqa: F401

EG_VENV = Path(os.environ.get("KERNELPAD_EG_VENV", ".venv-eg")).resolve()


class EnterpriseGateway(Gateway):
    def command(self) -> list[str]:
        return [
            str(EG_VENV / "bin" / "jupyter-enterprisegateway"),
            f"--EnterpriseGatewayApp.port={self.port}",
            "--EnterpriseGatewayApp.ip=127.0.0.1",
            f"--EnterpriseGatewayApp.auth_token={TOKEN}",
        ]

    def environment(self) -> dict[str, str]:
        # Its kernelspec runs "python": the gateway's own, with its ipykernel.
        env = super().environment()
        return {**env, "PATH": f"{EG_VENV / 'bin'}:{env['PATH']}"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    program = EG_VENV / "bin" / "jupyter-enterprisegateway"
    assert program.exists(), "run: make test-enterprise-gateway"
    started = EnterpriseGateway(tmp_path_factory.mktemp("eg"))
    started.wait_ready()
    yield started
    started.stop()


async def test_runs_limits_and_restarts_on_enterprise_gateway(api: Api) -> None:
    session = (await api.create_session())["session_id"]
    await api.execute(session, "x = 41")
    assert (await api.execute(session, "print(x + 1)"))["stdout"] == "42\n"
    body = await api.execute(session, "while True:\n    pass", time_limit=1000)
    assert body["timed_out"] and body["state_kept"], body
    assert (await api.execute(session, "print(x)"))["stdout"] == "41\n"
    failed = await api.execute(session, "1/0")
    assert failed["error"]["ename"] == "ZeroDivisionError"
