"""The question library: prepared notebooks to start interviews from.

Each question is an ``.ipynb`` file in ``QUESTIONS_DIR`` (by default ``DATA_DIR/questions``),
named by its file name without the extension. Its title, description and language come from
the notebook's metadata (``metadata.kernelpad.title`` and ``.description``; the kernelspec),
else from its first heading and its file name. The first start puts kernelpad's example
questions in the folder; from then on the folder is the operator's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelpad.errors import InvalidValue, QuestionNotFound
from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.sessions.grading.nbgrader_format import release
from kernelpad.sessions.notebooks import notebook_brief, notebook_language, read_ipynb

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).parent / "questions"
QUESTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Question:
    id: str
    title: str
    description: str
    #: kernelpad's id of its language, or "" if this server does not offer it.
    language: str
    minutes: int | None = None  # how long it should take, if it says
    tests: int = 0  # its test cells (nbgrader's "grade" cells with code)
    points: float = 0.0  # what they are worth together
    #: Why it cannot be used, for a question that cannot (the rest is then a guess).
    broken: str | None = None


class QuestionLibrary:
    """The ``.ipynb`` files of one folder, read when asked (a file added is seen at once)."""

    def __init__(self, folder: Path, registry: LanguageRegistry) -> None:
        self.folder = folder
        self.registry = registry

    async def install_examples(self) -> None:
        """Create the folder with kernelpad's example questions, the first time."""
        await asyncio.to_thread(self._install_examples)

    def _install_examples(self) -> None:
        if self.folder.exists():
            return
        self.folder.mkdir(parents=True)
        for example in sorted(EXAMPLES.glob("*.ipynb")):
            shutil.copyfile(example, self.folder / example.name)
        log.info("question library in %s, with kernelpad's examples", self.folder)

    async def all(self) -> list[Question]:
        """Every question, by title; a broken one too, with why (and logged)."""
        return await asyncio.to_thread(self._list)

    def _list(self) -> list[Question]:
        questions = []
        for path in sorted(self.folder.glob("*.ipynb")) if self.folder.is_dir() else []:
            if not QUESTION_ID.match(path.stem):
                continue
            try:
                questions.append(self._describe(path.stem, self._read(path)))
            except Exception as exc:
                log.warning("question %s cannot be used: %s", path.name, exc)
                why = str(exc).strip() or type(exc).__name__
                title = path.stem.replace("-", " ")
                questions.append(Question(path.stem, title, "", "", broken=why[:500]))
        return sorted(questions, key=lambda q: q.title.lower())

    async def load(self, question_id: str) -> dict[str, Any]:
        """The notebook of a question, as JSON."""
        if not QUESTION_ID.match(question_id):
            raise QuestionNotFound(f"There is no question {question_id!r}.")
        path = self.folder / f"{question_id}.ipynb"
        try:
            return await asyncio.to_thread(self._read, path)
        except FileNotFoundError:
            raise QuestionNotFound(f"There is no question {question_id!r}.") from None
        except (OSError, ValueError) as exc:  # a folder, unreadable, not JSON, not UTF-8
            raise InvalidValue(f"The question {question_id!r} cannot be read: {exc}.") from None

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a notebook")
        return data

    def _describe(self, question_id: str, data: dict[str, Any]) -> Question:
        notebook = read_ipynb(data)
        ours = notebook.metadata.get("kernelpad", {})
        title = ours.get("title") or _first_heading(notebook) or question_id.replace("-", " ")
        language = notebook_language(notebook, self.registry) or ""
        # Checked as a session made from it will be: a question nbgrader refuses is broken.
        released = release(json.loads(json.dumps(notebook.cells)), language or "python")
        return Question(
            id=question_id,
            title=str(title),
            description=str(ours.get("description", "")),
            language=language,
            minutes=notebook_brief(notebook)[1],
            tests=len(released.tests) if released else 0,
            points=released.points if released else 0.0,
        )


def _first_heading(notebook: Any) -> str | None:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in str(cell.source).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip() or None
    return None
