"""Handlers of /api/v1/languages: what can run here, and starter code."""

from __future__ import annotations

from kernelpad.errors import UnknownLanguage
from kernelpad.web.base import ApiError, ApiHandler, operation
from kernelpad.web.schemas import ErrorResponse
from kernelpad.web.server_schemas import LanguageList, LanguageOut, TemplateOut

TAGS = ("languages",)


class LanguagesHandler(ApiHandler):
    @operation("Languages whose kernels are installed", responses={200: LanguageList}, tags=TAGS)
    async def get(self) -> None:
        languages = [LanguageOut.of(item) for item in self.manager.registry.installed()]
        self.respond(LanguageList(languages=languages))


class TemplateHandler(ApiHandler):
    @operation(
        "Starter code for a language",
        responses={200: TemplateOut, 404: ErrorResponse},
        tags=TAGS,
    )
    async def get(self, language_id: str) -> None:
        # Starter code is shown for unavailable languages too: only running needs a kernel.
        try:
            item = self.manager.registry.describe(language_id)
        except UnknownLanguage as exc:
            raise ApiError(404, exc.code, exc.public) from None
        self.respond(
            TemplateOut(
                language=item.language.id,
                template=item.language.template,
                file_extension=item.language.file_extension,
            )
        )
