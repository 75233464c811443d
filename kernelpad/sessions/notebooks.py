"""A session's notebook as a Jupyter notebook file (nbformat 4), out and in.

Out: what everyone sees in the pad (sources, outputs, execution counts), with each code cell's
language in ``metadata.kernelpad.language`` and the session's main language as the kernelspec,
so that JupyterLab opens it with that kernel. The host's private notes are never part of it.

In: any nbformat notebook (older versions are converted), as the starting notebook of a new
session; its outputs only if asked for.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
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
_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # nbformat 4.5's cell ids
_CELL_TYPES = ("code", "markdown", "raw")
MAX_STATEMENT = 20_000  # characters of a question's statement


def to_ipynb(
    cells: list[dict[str, Any]], session: Session, main: InstalledLanguage | None
) -> dict[str, Any]:
    """The pad's cells (plain values, as the shared document holds them) as an nbformat 4
    notebook file. The document is anyone's to write, so each value is checked: what is not
    a cell, or not an output, is left out, and the file stays valid."""
    ids: set[str] = set()
    clean = [c for c in (_cell(cell, session.language, ids) for cell in cells) if c is not None]
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
    if session.statement:
        metadata["kernelpad"]["statement"] = session.statement
    if session.suggested_minutes:
        metadata["kernelpad"]["minutes"] = session.suggested_minutes
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
    return {"cells": clean, "metadata": metadata, "nbformat": 4, "nbformat_minor": NBFORMAT_MINOR}


def _cell(cell: Any, language: str, ids: set[str]) -> dict[str, Any] | None:
    if not isinstance(cell, dict) or cell.get("cell_type") not in _CELL_TYPES:
        return None
    kind = cell["cell_type"]
    metadata = _object(cell.get("metadata"))
    cell_id = cell.get("id")
    if not isinstance(cell_id, str) or not _CELL_ID.match(cell_id) or cell_id in ids:
        cell_id = uuid.uuid4().hex[:12]
    ids.add(cell_id)
    out: dict[str, Any] = {
        "id": cell_id,
        "cell_type": kind,
        "metadata": metadata,
        "source": _text(cell.get("source")),
    }
    if kind == "code":
        ours = metadata["kernelpad"] = _object(metadata.get("kernelpad"))
        if not isinstance(ours.get("language"), str):
            ours["language"] = language
        outputs = cell.get("outputs")
        out["outputs"] = [
            o for o in (_output(x) for x in (outputs if isinstance(outputs, list) else [])) if o
        ]
        out["execution_count"] = _count(cell.get("execution_count"))
    elif isinstance(cell.get("attachments"), dict):
        out["attachments"] = cell["attachments"]
    return out


def _output(output: Any) -> dict[str, Any] | None:
    """An output as nbformat wants it, or None if it cannot be one."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream" and output.get("name") in ("stdout", "stderr"):
        return {"output_type": kind, "name": output["name"], "text": _text(output.get("text"))}
    if kind in ("display_data", "execute_result"):
        data = output.get("data")
        bundle = {
            mime: value
            for mime, value in (data.items() if isinstance(data, dict) else ())
            if isinstance(mime, str)
            and (mime.endswith("json") or isinstance(value, str) or _strings(value))
        }
        out = {"output_type": kind, "data": bundle, "metadata": _object(output.get("metadata"))}
        if kind == "execute_result":
            out["execution_count"] = _count(output.get("execution_count"))
        return out
    if kind == "error":
        traceback = output.get("traceback")
        return {
            "output_type": kind,
            "ename": _text(output.get("ename")),
            "evalue": _text(output.get("evalue")),
            "traceback": traceback if _strings(traceback) else [],
        }
    return None


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _text(value: Any) -> str:
    """nbformat's multiline string: a string, or a list of strings to join."""
    if isinstance(value, str):
        return value
    return "".join(value) if _strings(value) else ""


def _count(value: Any) -> int | None:
    # Numbers from a browser's Yjs are doubles: 3.0 is the count 3.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        return None
    return int(value) if value >= 0 else None


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
    metadata = _object(notebook.get("metadata"))
    kernelspec = _object(metadata.get("kernelspec"))
    names = [
        _object(metadata.get("kernelpad")).get("language"),
        _object(metadata.get("language_info")).get("name"),
        kernelspec.get("language"),
        kernelspec.get("name"),
    ]
    return _offered(names, registry)


def notebook_title(notebook: nbformat.NotebookNode) -> str | None:
    """The title a notebook gives itself (``metadata.kernelpad.title``), if it is one that
    a session may have: text of 1 to 200 characters, without control characters."""
    title = _object(_object(notebook.get("metadata")).get("kernelpad")).get("title")
    if not isinstance(title, str):
        return None
    title = title.strip()
    if not 0 < len(title) <= 200 or any(unicodedata.category(ch) == "Cc" for ch in title):
        return None
    return title


def notebook_brief(notebook: nbformat.NotebookNode) -> tuple[str, int | None]:
    """The question a notebook states for the side panel (``metadata.kernelpad.statement``,
    Markdown) and the minutes it suggests (``.minutes``); what is not what it should be is
    left out, as it came from anyone's file."""
    ours = _object(_object(notebook.get("metadata")).get("kernelpad"))
    statement, minutes = ours.get("statement"), ours.get("minutes")
    text = statement[:MAX_STATEMENT] if isinstance(statement, str) else ""
    good = isinstance(minutes, int) and not isinstance(minutes, bool) and 0 < minutes <= 600
    return text, minutes if good else None


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
    ids: set[str] = set()
    # Plain JSON values from here on: they go into the CRDT document.
    for raw in json.loads(json.dumps(notebook.cells)):
        cell = _cell(raw, main_language, ids)
        if cell is None:
            continue
        if cell["cell_type"] == "code":
            ours = cell["metadata"]["kernelpad"]
            ours["language"] = _offered([ours.get("language")], registry) or main_language
            if not include_outputs:
                cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {"kernelpad": {"language": main_language}},
        "nbformat": 4,
        "nbformat_minor": NBFORMAT_MINOR,
    }
