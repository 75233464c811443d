"""JupyterHub with kernelpad as a Hub-managed service.

The Hub starts kernelpad, routes ``/services/kernelpad/`` to it through its proxy, and logs
interviewers in (OAuth). Candidates need no Hub account: the join link lets them in.

Try it from the repository (``make setup`` installs kernelpad, jupyterhub and the proxy)::

    cd examples && npm ci && ../.venv/bin/jupyterhub -f jupyterhub_config.py

then open http://127.0.0.1:8000/services/kernelpad/ and log in as a member of the group
``interviewers``. To try it without system accounts, add a test login and an interviewer::

    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = "try-it"
    c.Authenticator.allow_all = True
    c.JupyterHub.load_groups = {"interviewers": {"users": ["alice"]}}

kernelpad's sandbox needs root: run the Hub as root, or set ``KERNELPAD_SANDBOX=false`` in the
service's ``environment`` only where all code run is trusted. Copy what you need into your
Hub's own config.
"""

import os
import sys
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (given by JupyterHub)

here = Path(__file__).resolve().parent

c.JupyterHub.services = [
    {
        "name": "kernelpad",
        # Where kernelpad listens; it reads this from JUPYTERHUB_SERVICE_URL.
        "url": "http://127.0.0.1:10101",
        # Same Python as the Hub: kernelpad and its kernels are installed there.
        "command": [sys.executable, "-m", "kernelpad"],
        "environment": {
            "KERNELPAD_DATA_DIR": os.environ.get(
                "KERNELPAD_DATA_DIR", str(here / "kernelpad-data")
            ),
            "JUPYTER_PLATFORM_DIRS": "1",
        },
        # The Hub's own service: no "allow kernelpad to see your name?" page at login.
        "oauth_no_confirm": True,
        "display": True,  # listed in the Hub's Services menu
    }
]

# Who may start interviews: Hub users holding access to the service. Without this role the Hub
# refuses their OAuth login to kernelpad, and kernelpad refuses their API tokens (403).
# To let every Hub user in instead, give the scope to the role "user" (keeping its "self").
c.JupyterHub.load_roles = [
    {
        "name": "kernelpad-interviewers",
        "description": "Start coding interviews in kernelpad",
        "scopes": ["access:services!service=kernelpad"],
        "groups": ["interviewers"],
    }
]
c.JupyterHub.load_groups = {"interviewers": {"users": []}}

# The proxy from this folder's package.json (npm ci), if it was installed here.
proxy = here / "node_modules" / ".bin" / "configurable-http-proxy"
if proxy.exists():
    c.ConfigurableHTTPProxy.command = [str(proxy)]
