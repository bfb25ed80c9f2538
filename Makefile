# The two commands of the README. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,ragas]'
	touch $(BIN)/.installed $@

demo: $(BIN)/.installed
	$(BIN)/python -m evalkit.demo

test: $(BIN)/.installed-dev
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

bench: $(BIN)/.installed-dev
	$(BIN)/python bench/bench_tracking.py
	$(BIN)/python bench/bench_runner.py
	$(BIN)/python bench/bench_offline_evaluators.py
	$(BIN)/python bench/bench_judged.py
	$(BIN)/python bench/bench_artifacts.py
	$(BIN)/python bench/bench_rag.py
	$(BIN)/python bench/bench_report.py
	$(BIN)/python bench/bench_gate.py

clean:
	rm -rf $(VENV) evalkit.db evalkit.db-wal evalkit.db-shm evalkit-artifacts evalkit-out
