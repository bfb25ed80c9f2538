# The two commands of the README. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench mutate clean

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[offline-scorers]'
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
	$(BIN)/python bench/bench_import.py
	$(BIN)/python bench/bench_tracking.py
	$(BIN)/python bench/bench_runner.py
	$(BIN)/python bench/bench_offline_evaluators.py
	$(BIN)/python bench/bench_judged.py
	$(BIN)/python bench/bench_artifacts.py
	$(BIN)/python bench/bench_evaluate_s3.py
	$(BIN)/python bench/bench_rag.py
	$(BIN)/python bench/bench_report.py
	$(BIN)/python bench/bench_gate.py
	$(BIN)/python bench/bench_ray.py

# Mutation testing (not part of `make test`): mutmut plants one small bug at a time in the modules
# below and runs the tests that reach it; a surviving mutant is a bug the tests would miss.
# Config and the test files per module: [tool.mutmut] in pyproject.toml. Counts per module are
# printed at the end; the explained survivors are in bench/mutation-survivors.md.
MUTMUT_VERSION := 3.8.1
MUTATE_JOBS ?= 2
STORE := evalkit.tracking.sql.store
# The store's write path only: its reads and search are covered by other suites.
MUTATE_STORE_WRITES := "$(STORE).*create_experiment*" "$(STORE).*set_experiment_tag*" "$(STORE).*_stage*" \
	"$(STORE).*create_run*" "$(STORE).*update_run*" "$(STORE).*log_batch*" "$(STORE).*_write*" \
	"$(STORE).*_checked_batch*" "$(STORE).*delete_tag*" "$(STORE).*upsert*" "$(STORE).*checkpoint*" \
	"$(STORE).*close*" "evalkit.tracking.buffered.*"
MUTATE_TARGETS ?= "evalkit.suite.gates.*" "evalkit.stats.*" "evalkit.inference.runner.runner.*" "evalkit.inference.runner.caller.*" \
	"evalkit.inference.runner.ratelimit.*" "evalkit.inference.cache.*" "evalkit.tracking.sql.engine.*" "evalkit.redaction.*" \
	$(MUTATE_STORE_WRITES)

mutate: $(BIN)/.installed-dev
	$(BIN)/pip install --quiet 'mutmut==$(MUTMUT_VERSION)'
	rm -rf mutants
	$(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(MUTATE_TARGETS) > mutants.log 2>&1 || (tail -40 mutants.log; exit 1)
	$(BIN)/python bench/mutation_counts.py

clean:
	rm -rf mutants mutants.log $(VENV) evalkit.db evalkit.db-wal evalkit.db-shm evalkit-artifacts evalkit-out
