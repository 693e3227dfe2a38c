"""The course's exercise convention, checked on a committed notebook: question cells tagged "exercise", markdown
answers in whole cells tagged "solution", code answers between `### BEGIN SOLUTION` and `### END SOLUTION` lines
(the student version replaces each such block with `raise NotImplementedError("exercise")`), and a closing
"What this lab found" section that reads the committed claims."""

import ast
import re

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUDENT_LINE = 'raise NotImplementedError("exercise")'


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def student_source(source: str) -> str:
    """A code cell as the student version shows it: each solution block replaced by one raise, at its indentation."""
    lines, out, inside = source.split("\n"), [], False
    for line in lines:
        if line.strip() == BEGIN:
            assert not inside, "nested solution block"
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + STUDENT_LINE)
        elif line.strip() == END:
            assert inside, "END SOLUTION without BEGIN"
            inside = False
        elif not inside:
            out.append(line)
    assert not inside, "BEGIN SOLUTION without END"
    return "\n".join(out)


def check_exercises(path, minimum_questions: int, findings_filter: str) -> None:
    notebook = nbformat.read(path, as_version=4)
    cells = notebook.cells
    questions = [c for c in cells if "exercise" in tags(c) and re.match(r"\*\*\d+\.", c.source)]
    assert len(questions) >= minimum_questions, f"{len(questions)} numbered exercises"
    numbers = [int(re.match(r"\*\*(\d+)\.", c.source).group(1)) for c in questions]
    assert numbers == list(range(1, len(numbers) + 1))
    solutions = [c for c in cells if "solution" in tags(c)]
    assert solutions and all(c.cell_type == "markdown" and c.source.startswith("*Answer.*") for c in solutions)
    code_exercises = [c for c in cells if c.cell_type == "code" and BEGIN in c.source]
    assert len(code_exercises) >= 2 and all("exercise" in tags(c) for c in code_exercises)
    for cell in (c for c in cells if c.cell_type == "code"):
        ast.parse(re.sub(r"^\s*%.*$", "", student_source(cell.source), flags=re.M))  # the student version parses
    # every answer comes after its question: no solution cell before the first exercise
    first_question = cells.index(questions[0])
    assert all(cells.index(c) > first_question for c in solutions)
    closing = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## What this lab")]
    assert len(closing) == 1
    assert f'lab_findings("{findings_filter}")' in cells[closing[0] + 1].source
