"""The nbformat functions the tests call, with their types.

nbformat says it is typed (it ships ``py.typed``) but leaves these functions unannotated, so
mypy's strict mode refuses calls to them. Each is given here the signature the tests use and
the type its documentation gives for what it returns: a ``NotebookNode`` (a dict whose keys
are also attributes), or for ``writes`` the notebook's JSON text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import nbformat
from nbformat import NotebookNode


class _NewCell(Protocol):
    def __call__(self, source: str = "", **fields: Any) -> NotebookNode: ...


class _NewNotebook(Protocol):
    def __call__(self, **fields: Any) -> NotebookNode: ...


class _Read(Protocol):
    def __call__(self, fp: str | Path, as_version: int) -> NotebookNode: ...


new_code_cell: _NewCell = nbformat.v4.new_code_cell
new_markdown_cell: _NewCell = nbformat.v4.new_markdown_cell
new_notebook: _NewNotebook = nbformat.v4.new_notebook
# A dict becomes a NotebookNode, recursively.
from_dict: Callable[[dict[str, Any]], NotebookNode] = nbformat.from_dict
writes: Callable[[NotebookNode], str] = nbformat.writes
read: _Read = nbformat.read
