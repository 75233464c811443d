"""The pydantic models of what the server offers: its languages, their templates, and its
health (``GET /api/v1/languages``, ``.../template``, ``/api/v1/health``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from kernelpad.kernels.languages import InstalledLanguage

# Languages


class LanguageOut(BaseModel):
    id: str
    name: str
    kernel_name: str
    kernel_display_name: str
    version: str | None = Field(
        description="As the kernel reports it, once one has started; else from its kernelspec."
    )
    file_extension: str
    description: str
    available: bool
    unavailable_reason: str | None
    keeps_state: bool = Field(description="Variables persist between runs.")
    stdin: bool = Field(description="The kernel can read input (see 'stdin' of execute).")
    interrupt: Literal["signal", "message"] = Field(
        description="How the kernel is interrupted when a run passes its time limit."
    )

    @classmethod
    def of(cls, item: InstalledLanguage) -> LanguageOut:
        return cls(
            id=item.language.id,
            name=item.language.display_name,
            kernel_name=item.kernel_name,
            kernel_display_name=item.kernel_display_name,
            version=item.version,
            file_extension=item.language.file_extension,
            description=item.language.description,
            available=item.available,
            unavailable_reason=item.unavailable_reason,
            keeps_state=item.language.keeps_state,
            stdin=item.language.stdin,
            interrupt=item.interrupt_mode,
        )


class LanguageList(BaseModel):
    languages: list[LanguageOut]


class TemplateOut(BaseModel):
    language: str
    template: str
    file_extension: str


# Health


class HealthOut(BaseModel):
    status: Literal["ok"]
    app_name: str
    version: str
    sessions_active: int
    kernels_running: int
    kernels_pooled: int
    executions_running: int
    executions_queued: int
    uptime_seconds: float
    sandbox: bool = Field(description="Kernels run in the sandbox (SANDBOX).")
