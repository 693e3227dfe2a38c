"""Command line, with papermill's flags for parameters:

python -m canu_core demo [-f params.yaml ...] [-p name value ...]
python -m canu_core notebook 01_pretrain [-f params.yaml ...] [-p name value ...]
python -m canu_core run 01_pretrain|03_train [-f params.yaml ...] [-p name value ...]
torchrun --nproc_per_node N -m canu_core run 03_train [-f params.yaml ...]     (one run on N GPUs or processes)
python -m canu_core student [FOLDER]     (the notebooks without their answers, for students; default student/)
"""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load_params, parse_parameters

JOBS = ("demo", "notebook", "run", "student")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="canu", description=__doc__)
    parser.add_argument("job", choices=JOBS)
    parser.add_argument(
        "notebook",
        nargs="?",
        help="with `notebook`: its name, e.g. 01_pretrain; with `run`: 01_pretrain or 03_train; with `student`: the "
        "folder for the student versions (default student/)",
    )
    parser.add_argument(
        "-f",
        "--parameters-file",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML parameter set (repeatable; later files win)",
    )
    parser.add_argument(
        "-p",
        "--parameter",
        action="append",
        nargs=2,
        default=[],
        metavar=("NAME", "VALUE"),
        help="one parameter, its value read as YAML (0.1, true, text)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the job ran; 2 for parameters or a run folder that were refused before anything ran (the message
    says what was expected and what was found; a folder another process works in names that process), or for a
    notebook whose answers break the course's convention (`student`); 1 when a notebook failed (its cell's error and
    where its executed copy is) or the disk filled up (one line: the folder and its free space)."""
    args = parse_args(argv)
    if args.job == "student":
        if args.parameters_file or args.parameter:
            print("canu: `student` takes no parameters, only a folder", file=sys.stderr)
            return 2
        return student_job(args.notebook or "student")
    try:  # before torch is imported: a refused value is answered at once
        overrides = parse_parameters(args.parameter)
        params = load_params(*args.parameters_file, overrides=overrides)
    except ConfigError as err:
        print(f"canu: {err}", file=sys.stderr)
        return 2
    from .runs import CheckpointError, DiskFullError

    try:
        if args.job == "demo":
            from .jobs import run_demo

            run_demo(params)
        elif not args.notebook:
            print(f"canu: `{args.job}` needs a notebook name, e.g. 01_pretrain", file=sys.stderr)
            return 2
        elif args.job == "run":
            from .jobs import run_training

            run_training(args.notebook, params)
        else:
            return notebook_job(args.notebook, args.parameters_file, overrides)
    except (ConfigError, CheckpointError, FileNotFoundError) as err:
        print(f"canu: {err}", file=sys.stderr)
        return 2
    except DiskFullError as err:
        print(f"canu: {err}" + "".join(f"; {note}" for note in getattr(err, "__notes__", [])), file=sys.stderr)
        return 1
    return 0


def student_job(folder: str) -> int:
    """Write the student version of every notebook (answers out, outputs cleared) and list them."""
    from .teaching import write_student_notebooks

    try:
        written = write_student_notebooks(folder)
    except ValueError as err:  # a notebook breaks the answers' convention: nothing half-stripped is handed out
        print(f"canu: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"student version: {path}")
    return 0


def notebook_job(name: str, parameter_files: list[str], overrides: dict) -> int:
    """Run a notebook; a failed cell is reported in one message (papermill's own traceback is in the executed
    copy)."""
    import papermill

    from .notebook import run_notebook

    try:
        print(f"executed: {run_notebook(name, parameter_files, overrides, log_output=True)}")
    except papermill.PapermillExecutionError as err:
        notes = "".join(f"\n{note}" for note in getattr(err, "__notes__", []))
        print(
            f"canu: notebook {name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}{notes}", file=sys.stderr
        )
        return 1
    return 0
