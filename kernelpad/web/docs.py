"""The API's own description: /openapi.json, Swagger UI at /docs and ReDoc at /redoc.

The viewers' scripts come from npm packages installed by ``make`` and are served from this
server: the docs work without any CDN.
"""

from __future__ import annotations

import json
from pathlib import Path

from kernelpad.web.base import ApiError, ApiHandler

VENDOR = Path(__file__).parent / "static" / "vendor"

SWAGGER_PAGE = """<!doctype html>
<html lang="en" data-spec="{base}openapi.json"><head><meta charset="utf-8">
<title>{title} API</title>
<link rel="stylesheet" href="{base}static/vendor/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{base}static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{base}static/docs/swagger-init.js"></script>
</body></html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} API</title></head>
<body><redoc spec-url="{base}openapi.json"></redoc>
<script src="{base}static/vendor/redoc/redoc.standalone.js"></script>
</body></html>
"""


class OpenAPIHandler(ApiHandler):
    def get(self) -> None:
        self.finish(json.dumps(self.application.settings["openapi"]))


class _DocsPage(ApiHandler):
    page = ""
    asset = ""

    def get(self) -> None:
        if not (VENDOR / self.asset).is_file():
            raise ApiError(
                503,
                "docs_assets_missing",
                f"The documentation viewer's files are not installed ({self.asset});"
                " run 'make' to install them. /openapi.json works without them.",
            )
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        settings = self.application.settings["kernelpad"]
        self.finish(self.page.format(title=settings.app_name, base=settings.base_url))


class SwaggerHandler(_DocsPage):
    page = SWAGGER_PAGE
    asset = "swagger-ui/swagger-ui-bundle.js"


class RedocHandler(_DocsPage):
    page = REDOC_PAGE
    asset = "redoc/redoc.standalone.js"
