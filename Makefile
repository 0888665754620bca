# Two commands on a fresh clone: `make run` and `make test`. Nothing global is installed.
# `make test-all` runs the second tier of tests (README: "Test tiers"); CI runs both.
# 3.12 or newer when the machine has it (scripts/venv-python says why)
PYTHON ?= $(shell scripts/venv-python)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-all pytest install lint typecheck format lock migrate dev-pki bench bench-quick soak soak-amqp fuzz clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=24'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Serve on http://127.0.0.1:8080 with the embedded default: SQLite in ./var and, in dev, a
# development PKI with a demo municipality created on first start.
run: install
	mkdir -p -m 700 var
	KPR_ENV=$${KPR_ENV:-dev} $(BIN)/kpr-mottak db upgrade
	KPR_ENV=$${KPR_ENV:-dev} $(BIN)/kpr-mottak dev-pki --if-missing
	KPR_ENV=$${KPR_ENV:-dev} $(BIN)/kpr-mottak serve --host 127.0.0.1 --port 8080

# ruff, then the layers the code keeps (import-linter's contracts in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

# The first tier, at most 5 minutes on 2 cores: ruff, lint-imports and mypy beside pytest on
# two workers, everything but the second tier (`slow`, `e2e`), Hypothesis' `dev` budgets, the
# coverage gate. Prints its wall time at the end.
test: install
	@start=$$(date +%s); status=0; \
	$(MAKE) --no-print-directory -j3 -Oline lint typecheck pytest || status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s"; exit $$status

PYTEST := $(BIN)/pytest -q -p no:cacheprovider
# On 3.12 and newer coverage measures through sys.monitoring: the same lines counted (greenlets
# included) in half the time; its config drops the greenlet tracer that sysmon cannot use.
SYSMON = $(shell $(BIN)/python -c 'import sys; print(int(sys.version_info >= (3, 12)))')
COVERAGE = $(if $(filter 1,$(SYSMON)),COVERAGE_CORE=sysmon )
COV_CONFIG = $(if $(filter 1,$(SYSMON)),--cov-config=tests/coverage-sysmon.toml)

pytest: install
	$(COVERAGE)$(PYTEST) -n 2 --dist worksteal -m "not slow and not e2e and not broker and not mail" \
	  --cov=app $(COV_CONFIG) --cov-report=term:skip-covered --cov-fail-under=95

# The second tier, after `make test` (.ci/run): the real uvicorn processes (`e2e`: workers,
# graceful shutdown, key rollover, outage, the soak, schemathesis, Chromium), the bench smoke
# tests and full-size inputs (`slow`), and every Hypothesis property again with the `ci`
# profile's full budgets. Nothing else of the first tier. One process: the servers it starts
# are timed by the clock and want the cores to themselves.
test-all: install
	@start=$$(date +%s); status=0; \
	$(PYTEST) -m "slow or e2e or hypothesis or broker or mail" --hypothesis-profile=ci || status=$$?; \
	echo "make test-all: $$(( $$(date +%s) - start )) s"; exit $$status

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Refresh the lock file from the ranges in pyproject.toml.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	.lockvenv/bin/pip freeze --exclude-editable | grep -v '^kpr-mottak' > requirements.lock
	rm -rf .lockvenv

bench: install
	$(BIN)/python -m bench.intake
	$(BIN)/python -m bench.validate
	$(BIN)/python -m bench.large
	$(BIN)/python -m bench.load small
	$(BIN)/python -m bench.load responsive
	$(BIN)/python -m bench.load history
	$(BIN)/python -m bench.load deadline

# Issue 11's benchmarks in their short form (a few minutes on a small machine).
bench-quick: install
	$(BIN)/python -m bench.large --notifications 20000
	$(BIN)/python -m bench.load small --quick
	$(BIN)/python -m bench.load responsive --quick
	$(BIN)/python -m bench.load history --quick
	$(BIN)/python -m bench.load deadline --quick

# Crash soak (docs/operations.md): two instances on a throw-away PostgreSQL, 100 SIGKILLs of
# instances and of PostgreSQL under load, then every check. Loopback only; needs the
# PostgreSQL server binaries. `make test-all` runs a short form.
soak: install
	mkdir -p -m 700 var
	$(BIN)/python -m bench.soak --kills $${KILLS:-100} --report var/soak-report.json

# Crash soak over AMQP (docs/performance.md, issue 24): `kpr-mottak amqp listen` SIGKILLed
# KILLS times (default 30) while a municipality sends through the local RabbitMQ (AMQP 1.0
# plugin), then every check. `make test-all` runs a short form.
soak-amqp: install
	mkdir -p -m 700 var
	$(BIN)/python -m bench.amqp_soak --kills $${KILLS:-30} --report var/soak-amqp-report.json

# The intake fuzzer's long run (docs/operations.md, "Fuzzing"): FUZZ_EXAMPLES cases (default
# 100 000) of tests/integration/test_intake_fuzz.py on SQLite. Not part of `make test` or
# `make test-all` (they run the same property with its own budget).
fuzz: install
	@start=$$(date +%s); status=0; \
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100000} $(PYTEST) tests/integration/test_intake_fuzz.py \
	  -k sqlite --hypothesis-show-statistics || status=$$?; \
	echo "make fuzz: $$(( $$(date +%s) - start )) s"; exit $$status

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage
