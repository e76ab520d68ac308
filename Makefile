# Two commands a newcomer needs: `make demo` and `make test`. Both set up .venv from scratch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint fmt bench fuzz clean

# pip's and setuptools' output (the editable-install banner) goes to $(LOG), shown only when
# the set-up fails.
LOG := $(VENV)/install.log

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (pip's output: $(LOG))"
	@$(PYTHON) -m venv $(VENV)
	@{ $(BIN)/pip install --upgrade pip && $(BIN)/pip install -e '.[dev]'; } >$(LOG) 2>&1 \
		|| { cat $(LOG) >&2; echo "make: setting up $(VENV) failed; pip's output is above and in $(LOG)" >&2; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/crawler demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

# The long versions of tests/fuzz (`make test` runs them with a small fixed budget): many more
# generated examples, and the kill -9 chaos runs with 100 kills, more URLs and a larger site.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -rA --hypothesis-show-statistics tests/fuzz

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache crawler-demo
