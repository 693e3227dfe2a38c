"""Student versions of the notebooks: the exercises kept, their answers taken out, the outputs cleared.

The course's convention, which every notebook follows: a code cell's answer lines sit between a line
`### BEGIN SOLUTION` and a line `### END SOLUTION` (the student gets `raise NotImplementedError("exercise")` at the
same indentation in their place, so a cell left undone fails loudly instead of running half an answer); a markdown
answer is a whole cell tagged "solution" (the student version drops it); the question cells are tagged "exercise".
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import nbformat

from .runs import project_root, resolve_path

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
EXERCISE_STUB = 'raise NotImplementedError("exercise")'
SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"


def strip_solution_lines(source: str) -> str:
    """A code cell's source with each BEGIN / END SOLUTION block, markers included, replaced by one
    `raise NotImplementedError("exercise")` line indented as its BEGIN marker. A block left open, an END without a
    BEGIN or a block inside another is an error: a student version must not leak half an answer."""
    kept: list[str] = []
    inside = False
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"line {number}: {BEGIN_SOLUTION} inside another solution block")
            inside = True
            kept.append(line[: len(line) - len(line.lstrip())] + EXERCISE_STUB)
        elif marker == END_SOLUTION:
            if not inside:
                raise ValueError(f"line {number}: {END_SOLUTION} without {BEGIN_SOLUTION}")
            inside = False
        elif not inside:
            kept.append(line)
    if inside:
        raise ValueError(f"{BEGIN_SOLUTION} without {END_SOLUTION}")
    return "\n".join(kept)


def student_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `notebook` for students: solution-tagged cells dropped, code answers replaced by the stub, every
    output and execution count cleared."""
    student = copy.deepcopy(notebook)
    cells = []
    for index, cell in enumerate(student.cells):
        if SOLUTION_TAG in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            try:
                cell.source = strip_solution_lines(cell.source)
            except ValueError as err:
                raise ValueError(f"cell {index}: {err}") from None
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    student.cells = cells
    return student


def without_exercises(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `notebook` without its course cells (the questions, tagged "exercise", and the answers, tagged
    "solution"): what a study's runs execute, since an exercise teaches and measures nothing a study keeps."""
    lesson = copy.deepcopy(notebook)
    course = {EXERCISE_TAG, SOLUTION_TAG}
    lesson.cells = [cell for cell in lesson.cells if not course & set(cell.metadata.get("tags", []))]
    return lesson


def write_student_notebooks(folder: str | Path = "student", notebooks: Sequence[Path] | None = None) -> list[Path]:
    """Write the student version of each notebook (default: the four of notebooks/) into `folder` (relative to the
    project root), under the same file names; the paths written."""
    if notebooks is None:
        notebooks = sorted((project_root() / "notebooks").glob("[0-9]*.ipynb"))
    folder = resolve_path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        try:
            student = student_notebook(nbformat.read(path, as_version=4))
        except ValueError as err:
            raise ValueError(f"{path.name}: {err}") from None
        nbformat.write(student, folder / path.name)
        written.append(folder / path.name)
    return written
