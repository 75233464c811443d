"""The browser UI's pages: ``/`` (start an interview) and ``/s/{session_id}`` (the pad).

The scripts and styles are bundled by esbuild (``make`` runs it) into ``static/dist`` with a
content hash in every file name, listed in ``static/dist/manifest.json``. The pages name the
current files; the files themselves never change, so they are cached for a year.
"""

from __future__ import annotations

import json
from pathlib import Path

import tornado.web

from kernelpad.sessions.manager import SessionManager
from kernelpad.sessions.models import ACTIVE

DIST = Path(__file__).parent / "static" / "dist"
TEMPLATES = Path(__file__).parent / "templates"


class Bundle:
    """The manifest of the bundled files, read again whenever ``make`` rebuilt it."""

    def __init__(self, folder: Path = DIST) -> None:
        self.manifest_path = folder / "manifest.json"
        self._mtime = 0.0
        self._files: dict[str, str] = {}

    def files(self) -> dict[str, str] | None:
        """Entry name (``pad.js``) to hashed file name, or None if the UI is not built."""
        try:
            mtime = self.manifest_path.stat().st_mtime
        except FileNotFoundError:
            return None
        if mtime != self._mtime:
            self._files = json.loads(self.manifest_path.read_text())
            self._mtime = mtime
        return self._files


class _Page(tornado.web.RequestHandler):
    template = ""

    def initialize(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def get_template_path(self) -> str:
        return str(TEMPLATES)

    def set_default_headers(self) -> None:
        # The pages name the current bundle: never cache them. Kernel output is rendered in
        # the page, so nothing else may run there, nor may the page be framed by others.
        self.set_header("Cache-Control", "no-cache")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
            " img-src 'self' data: blob:; connect-src 'self'; frame-src 'none';"
            " object-src 'none'; base-uri 'none'; frame-ancestors 'self'",
        )
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")

    def page(self, **values: object) -> None:
        settings = self.settings["kernelpad"]
        files = self.bundle.files()
        if files is None:
            self.set_status(503)
            self.finish(
                "<!doctype html><title>kernelpad</title><p>The browser UI is not built yet: run"
                " <code>make run</code> (or <code>make setup</code>) to build it. The API works"
                f" without it: see <a href='{settings.base_url}docs'>its docs</a>.</p>"
            )
            return
        entry = self.template.removesuffix(".html")
        # A Hub user (kernelpad as a JupyterHub service) posts with the Hub's XSRF token.
        user = self.current_user if self.settings.get("hub_auth") else None
        self.render(
            self.template,
            files=files,
            entry=entry,
            app_name=settings.app_name,
            base_url=settings.base_url,
            hub_user=user["name"] if user else "",
            xsrf=self.xsrf_token.decode() if user else "",
            **values,
        )


class HomePage(_Page):
    """``/``: start an interview."""

    template = "home.html"

    def get(self) -> None:
        self.page()


class PadPage(_Page):
    """``/s/{session_id}``: the interview's shared notebook."""

    template = "pad.html"

    async def get(self, session_id: str) -> None:
        manager: SessionManager = self.settings["manager"]
        session = await manager.store.get_session(session_id)
        if session is None:
            self.set_status(404)
        self.page(
            session_id=session_id,
            session_name=session.name if session else "",
            found=session is not None,
            ended=session is not None and session.status != ACTIVE,
            review=session is not None and session.review_after_end,
        )


class ReplayPage(PadPage):
    """``/s/{session_id}/replay``: the host watches the interview again (the page asks the
    timeline with the host token it keeps)."""

    template = "replay.html"


class BundleFile(tornado.web.StaticFileHandler):
    """A bundled file: its name changes with its content, so it may be cached for good."""

    def set_extra_headers(self, path: str) -> None:
        if path == "manifest.json":  # the one name that stays while its content changes
            self.set_header("Cache-Control", "no-cache")
        else:
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")
