"""Student versions of the notebooks (canu_core.teaching): answers out, questions in, outputs cleared; no kernel."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from canu_core.cli import main
from canu_core.runs import project_root
from canu_core.teaching import (
    BEGIN_SOLUTION,
    strip_solution_lines,
    student_notebook,
    without_exercises,
    write_student_notebooks,
)

NOTEBOOKS = sorted((project_root() / "notebooks").glob("[0-9]*.ipynb"))


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def small_course() -> nbformat.NotebookNode:
    code_answer = (
        "def lift(observed, chance):\n"
        "    ### BEGIN SOLUTION\n"
        "    return observed / chance  # secret-code-answer\n"
        "    ### END SOLUTION\n"
        "\n"
        "lift(0.5, 0.125)"
    )
    computed = new_code_cell("1 + 1", execution_count=3, outputs=[new_output("execute_result", {"text/plain": "2"})])
    return new_notebook(
        cells=[
            computed,
            new_markdown_cell("**Q1.** Write `lift`.", metadata={"tags": ["exercise"]}),
            new_code_cell(code_answer, metadata={"tags": ["exercise"]}),
            new_markdown_cell("**Q2.** Why is chance not zero?", metadata={"tags": ["exercise"]}),
            new_markdown_cell("**Answer.** secret-markdown-answer", metadata={"tags": ["solution"]}),
        ]
    )


def test_student_version_keeps_questions_and_drops_both_kinds_of_answer():
    course = small_course()
    student = student_notebook(course)
    text = "\n".join(cell.source for cell in student.cells)
    assert "secret-code-answer" not in text and "secret-markdown-answer" not in text and BEGIN_SOLUTION not in text
    assert not any("solution" in tags(cell) for cell in student.cells)
    assert [cell.source for cell in student.cells if cell.cell_type == "markdown"] == [
        "**Q1.** Write `lift`.",
        "**Q2.** Why is chance not zero?",
    ]
    # the answer's lines become one stub at the marker's indentation; the lines around it stay
    assert student.cells[2].source == (
        'def lift(observed, chance):\n    raise NotImplementedError("exercise")\n\nlift(0.5, 0.125)'
    )
    assert (student.cells[0].outputs, student.cells[0].execution_count) == ([], None)
    assert len(course.cells) == 5 and "secret-code-answer" in course.cells[2].source  # the original is untouched


def test_a_study_run_executes_the_lesson_without_its_exercises():
    course = small_course()
    lesson = without_exercises(course)
    assert [cell.source for cell in lesson.cells] == ["1 + 1"]  # the questions and both kinds of answer are out
    assert len(course.cells) == 5  # the original is untouched


@pytest.mark.parametrize(
    "source, error",
    [
        ("### BEGIN SOLUTION\nx = 1", "without ### END SOLUTION"),
        ("x = 1\n### END SOLUTION", "line 2: ### END SOLUTION without"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "line 2: ### BEGIN SOLUTION inside"),
    ],
)
def test_broken_markers_are_refused(source, error):
    with pytest.raises(ValueError, match=error):
        strip_solution_lines(source)


@pytest.fixture(scope="module")
def student_versions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    assert main(["student", str(folder)]) == 0  # the command `make student` runs
    return folder


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_real_notebooks_lose_every_answer_and_keep_every_exercise(path, student_versions):
    instructor = nbformat.read(path, as_version=4)
    student = nbformat.read(student_versions / path.name, as_version=4)
    assert not any(BEGIN_SOLUTION in cell.source for cell in student.cells)
    assert not any("solution" in tags(cell) for cell in student.cells)
    assert not any(cell.get("outputs") for cell in student.cells)
    exercises = [cell for cell in instructor.cells if "exercise" in tags(cell)]
    kept = [cell for cell in student.cells if "exercise" in tags(cell)]
    assert len(kept) == len(exercises)
    for question, copy in zip(exercises, kept):
        expected = strip_solution_lines(question.source) if question.cell_type == "code" else question.source
        assert copy.source == expected


@pytest.mark.parametrize("name", ["01_pretrain", "04_ablations"])
def test_notebooks_01_and_04_ask_ten_questions_each_with_its_answer(name):
    """Every exercise-tagged markdown question is answered before the next question: by a solution-tagged cell or
    by a code cell holding a solution block, itself tagged as an exercise."""
    cells = nbformat.read(project_root() / "notebooks" / f"{name}.ipynb", as_version=4).cells
    questions = [i for i, cell in enumerate(cells) if "exercise" in tags(cell) and cell.cell_type == "markdown"]
    assert len(questions) >= 10
    for start, end in zip(questions, questions[1:] + [len(cells)]):
        answers = cells[start + 1 : end]
        assert any(
            "solution" in tags(cell) or (cell.cell_type == "code" and BEGIN_SOLUTION in cell.source) for cell in answers
        ), f"{name}: question in cell {start} has no answer"
    answered_in_code = [cell for cell in cells if cell.cell_type == "code" and BEGIN_SOLUTION in cell.source]
    assert all("exercise" in tags(cell) for cell in answered_in_code)  # kept, and found, as exercises


def test_write_student_notebooks_names_the_notebook_that_breaks_the_convention(tmp_path):
    broken = tmp_path / "05_broken.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("### BEGIN SOLUTION\nanswer = 42")]), broken)
    with pytest.raises(ValueError, match="05_broken.ipynb: cell 0: ### BEGIN SOLUTION without"):
        write_student_notebooks(tmp_path / "out", [broken])
