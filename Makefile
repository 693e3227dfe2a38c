# Every target creates .venv/ on first use (Python 3.11 + pip; torch <= 2.14.1 and torchvision <= 0.29.1, see
# docs/guide.md "Installing").
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-lab-test
# Python compiles a module to bytecode the first time it is imported and reuses it after; an environment that forbids
# writing it (PYTHONDONTWRITEBYTECODE, set on some machines) makes each of the test run's ~95 processes compile the
# package again. So the venv is installed without compiling its ~15,000 files up front (pip's compile step: about 35 s
# of the install), and what is imported is compiled once, on first use.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: venv demo test lab docs study fashion fashion-validation fashion-best-mu length student bench clean-outputs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -e '.[lab,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (canu_core)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m canu_core demo -f params/demo.yaml

# pytest: one process per core (pytest-xdist; a module's tests stay in one process, with its fixtures), each with
# one thread: on 2 cores, two one-threaded processes get more done than one two-threaded one.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist loadscope --durations=10

# JupyterLab on 127.0.0.1 only, with its login token (printed in the URL); --allow-root only when run as root (a
# container's usual user), which jupyter otherwise refuses. LAB_ARGS adds options (e.g. --port 8890 --no-browser).
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS) notebooks/

# The book: README, the four executed notebooks and the results pages under docs/ as a static site in site/ (open
# site/index.html). Reuses docs/executed/*.ipynb; DOCS_ARGS=--refresh executes the four notebooks again first, on
# params/demo.yaml's schedule (an estimated 15 min of CPU or more).
DOCS_ARGS ?=
$(VENV)/.installed-docs: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -e '.[docs]'
	touch $@

docs: $(VENV)/.installed-docs
	$(PY) docs/book/build.py $(DOCS_ARGS)

# The synthetic study from nothing: notebook 01 (if not run yet), then Table IV's runs on 5 seeds through notebook
# 03, then the tables, claims and figures (outputs/study/); the other studies are named in params/study.yaml.
# Resumes where it stopped.
study: $(STAMP)
	$(PY) -m canu_core notebook 04_ablations -f params/study.yaml

# The fashion study (docs/study/fashion/README.md): 3 pairs of source models, then 72 MMT runs (about 4 hours on
# 2 cores); resumable: a second call skips what finished (outputs/fashion/).
fashion: $(STAMP)
	$(PY) -m canu_core notebook 04_ablations -f params/fashion.yaml

# The fashion study's validation sweep (docs/study/fashion/best_mu/README.md): each arm's mu chosen on another world
# (10 MMT runs, about 35 min on 2 cores); resumable.
fashion-validation: $(STAMP)
	$(PY) -m canu_core notebook 04_ablations -f params/fashion-validation.yaml

# The fashion study at each arm's chosen mu (docs/study/fashion/best_mu/README.md): 48 MMT runs, about 3 hours on 2
# cores; resumable.
fashion-best-mu: $(STAMP)
	$(PY) -m canu_core notebook 04_ablations -f params/fashion-best-mu.yaml

# The length study (docs/study/length/README.md): MMT's three arms for 12 epochs on one pair, 3 seeds (9 runs,
# about an hour on 2 cores); resumable.
length: $(STAMP)
	$(PY) -m canu_core notebook 04_ablations -f params/length.yaml

# Student versions of the four notebooks in student/: each exercise kept, its answer taken out (a code answer becomes
# `raise NotImplementedError("exercise")`, a markdown answer cell is dropped), outputs cleared (canu_core/teaching.py).
student: $(STAMP)
	$(PY) -m canu_core student student

bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -e '.[bench]'
	$(PY) benchmarks/bench_evaluate.py

clean-outputs:
	find outputs -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
