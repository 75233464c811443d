"""A session's notebook as a Jupyter notebook file (nbformat 4), out and in.

Out: what everyone sees in the pad (sources, outputs, execution counts), with each code cell's
language in ``metadata.kernelpad.language`` and the session's main language as the kernelspec,
so that JupyterLab opens it with that kernel. The host's private notes are never part of it.

In: any nbformat notebook (older versions are converted), as the starting notebook of a new
session; its outputs only if asked for.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import nbformat

from kernelpad.errors import InvalidValue
from kernelpad.kernels.languages import InstalledLanguage, LanguageRegistry
from kernelpad.sessions.models import Session

NBFORMAT_MINOR = 5
# Names notebooks use for a language (language_info.name, kernelspec.language or .name) that
# differ from kernelpad's ids.
_ALIASES = {
    "python3": "python",
    "ipython": "python",
    "c++": "cpp",
    "c++17": "cpp",
    "xcpp17": "cpp",
    "js": "javascript",
    "ts": "typescript",
}
# Jupyter's language_info names for kernelpad's ids.
_JUPYTER_NAMES = {"cpp": "c++"}
_CELL_KEYS = {
    "code": ("id", "cell_type", "metadata", "source", "outputs", "execution_count"),
    "markdown": ("id", "cell_type", "metadata", "source", "attachments"),
    "raw": ("id", "cell_type", "metadata", "source", "attachments"),
}


def to_ipynb(
    notebook: dict[str, Any], session: Session, main: InstalledLanguage | None
) -> dict[str, Any]:
    """The pad's notebook (``YNotebook.get()``) as an nbformat 4 notebook file."""
    cells = []
    for cell in notebook.get("cells", []):
        kind = cell.get("cell_type")
        if kind not in _CELL_KEYS:
            continue  # not a cell: a client may put anything in the shared list
        clean = {key: cell[key] for key in _CELL_KEYS[kind] if key in cell}
        clean.setdefault("id", uuid.uuid4().hex[:12])
        clean.setdefault("metadata", {})
        clean["source"] = str(clean.get("source", ""))
        if kind == "code":
            clean["execution_count"] = _count(clean.get("execution_count"))
            clean["outputs"] = [_output(output) for output in clean.get("outputs", [])]
            clean["metadata"].setdefault("kernelpad", {}).setdefault("language", session.language)
        cells.append(clean)
    language = main.language.id if main else session.language
    metadata: dict[str, Any] = {
        "language_info": {"name": _JUPYTER_NAMES.get(language, language)},
        "kernelpad": {
            "language": language,
            "session_id": session.id,
            "title": session.name,
            "host_name": session.host_name,
            "created_at": session.created_at,
            "exported_at": time.time(),
        },
    }
    if main is not None:
        metadata["kernelspec"] = {
            "name": main.kernel_name,
            "display_name": main.kernel_display_name,
            "language": metadata["language_info"]["name"],
        }
        if main.language.file_extension:
            metadata["language_info"]["file_extension"] = main.language.file_extension
        if main.version:
            metadata["language_info"]["version"] = main.version
    return {
        "cells": cells,
        "metadata": metadata,
        "nbformat": 4,
        "nbformat_minor": NBFORMAT_MINOR,
    }


def _count(value: Any) -> int | None:
    # Numbers from a browser's Yjs are doubles: 3.0 is the count 3.
    return int(value) if isinstance(value, (int, float)) and value == int(value) else None


def _output(output: dict[str, Any]) -> dict[str, Any]:
    output = dict(output)
    if output.get("output_type") == "execute_result":
        output["execution_count"] = _count(output.get("execution_count"))
    if output.get("output_type") in ("execute_result", "display_data"):
        output.setdefault("metadata", {})
    return output


def read_ipynb(data: dict[str, Any]) -> nbformat.NotebookNode:
    """``data`` as a valid nbformat 4 notebook (converted from an older version), or
    :class:`InvalidValue` saying what is wrong. CPU work: call it in a thread."""
    try:
        notebook: nbformat.NotebookNode = nbformat.reads(  # type: ignore[no-untyped-call]
            json.dumps(data), as_version=4
        )
        nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        at = f" at {where}" if where else ""
        raise InvalidValue(
            f"The notebook is not a valid Jupyter notebook{at}: {exc.message}."
        ) from None
    except Exception as exc:  # nbformat raises what its readers raise, of many kinds
        raise InvalidValue(f"The notebook cannot be read as a Jupyter notebook: {exc}.") from None
    if not any(cell.cell_type == "code" for cell in notebook.cells):
        raise InvalidValue("The notebook has no code cell to start the interview with.")
    return notebook


def notebook_language(notebook: nbformat.NotebookNode, registry: LanguageRegistry) -> str | None:
    """The language the notebook is written in, if this server offers it."""
    metadata = notebook.get("metadata", {})
    kernelspec = metadata.get("kernelspec", {})
    names = [
        metadata.get("kernelpad", {}).get("language"),
        metadata.get("language_info", {}).get("name"),
        kernelspec.get("language"),
        kernelspec.get("name"),
    ]
    return _offered(names, registry)


def _offered(names: list[Any], registry: LanguageRegistry) -> str | None:
    available = {item.language.id: item for item in registry.installed() if item.available}
    for name in names:
        if not isinstance(name, str) or not name:
            continue
        name = _ALIASES.get(name.lower(), name.lower())
        if name in available:
            return name
        for item in available.values():  # a kernelspec name, such as "deno" or "java"
            if name == item.kernel_name:
                return item.language.id
    return None


def starting_cells(
    notebook: nbformat.NotebookNode,
    main_language: str,
    registry: LanguageRegistry,
    include_outputs: bool,
) -> dict[str, Any]:
    """An imported notebook as the pad's starting notebook: every code cell names its
    language (its own if offered here, else the main one); outputs only if asked for."""
    cells = []
    # Plain JSON values from here on: they go into the CRDT document.
    for cell in json.loads(json.dumps(notebook.cells)):
        if cell["cell_type"] not in _CELL_KEYS:
            continue
        clean = {key: cell[key] for key in _CELL_KEYS[cell["cell_type"]] if key in cell}
        clean["id"] = str(clean.get("id") or uuid.uuid4().hex[:12])
        metadata = dict(clean.get("metadata", {}))
        if cell["cell_type"] == "code":
            ours = dict(metadata.get("kernelpad", {}))
            ours["language"] = _offered([ours.get("language")], registry) or main_language
            metadata["kernelpad"] = ours
            if not include_outputs:
                clean["outputs"], clean["execution_count"] = [], None
        clean["metadata"] = metadata
        cells.append(clean)
    return {
        "cells": cells,
        "metadata": {"kernelpad": {"language": main_language}},
        "nbformat": 4,
        "nbformat_minor": NBFORMAT_MINOR,
    }
