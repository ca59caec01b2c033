# The two quick-start commands (README): `make run` and `make test`.
# Both create .venv on first use (a fresh clone needs only python3 >= 3.11 and make).
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test,server]'
	touch $@

FUZZ_EXAMPLES ?= 200

.PHONY: run test fuzz bench bench-subsidies bench-targets soak crash
# Serve on http://$(HOST):$(PORT) with a migrated SQLite file under instance/ (DEMO=1: demo data).
run: $(VENV)/.installed
	$(VENV)/bin/ipledger serve --host $(HOST) --port $(PORT) $(if $(DEMO),--demo,)

# The whole suite on SQLite, and on PostgreSQL too when IPLEDGER_TEST_POSTGRES_URL is set.
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n 2 $(PYTEST_ARGS)

# A longer schemathesis search than CI's (tests/api/test_fuzz.py), on SQLite; set
# IPLEDGER_TEST_POSTGRES_URL to fuzz PostgreSQL too (200 examples: ~2-3 min per database).
fuzz: $(VENV)/.installed
	IPLEDGER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/python -m pytest -n 2 tests/api/test_fuzz.py $(PYTEST_ARGS)

# Benchmarks on the local PostgreSQL (IPLEDGER_BENCH_POSTGRES_URL to point elsewhere), each beside
# a raw-SQL baseline of the same writes: the journal, then in one run the service's single
# (in-process and gunicorn with 8 clients) and batch loan posts, the raw rates of the same rows
# at the same concurrency, and pgbench's ledger transaction as the machine's ceiling, with the
# ratios. `bench/loans_profile.py` shows where a loan post's time goes. The machine may be
# shared: BENCH_LOCK=/path/to/lock runs each under flock.
BENCH_LOCK ?=
BENCH_RUN = $(if $(BENCH_LOCK),flock $(BENCH_LOCK) ,)
bench: $(VENV)/.installed
	$(BENCH_RUN)$(VENV)/bin/python bench/journal.py
	$(BENCH_RUN)$(VENV)/bin/python bench/loans.py --no-profile

# A subsidy draft over 1,000,000 loans on the local PostgreSQL (IPLEDGER_BENCH_POSTGRES_URL to
# point elsewhere) beside the per-loan loop and a raw COPY; several minutes (mostly generating
# the book; KEEP=1 keeps the database `ipledger_bench_subsidies` and later KEEP=1 runs reuse it).
# On a shared machine: flock /work/bench.lock make bench-subsidies KEEP=1
bench-subsidies: $(VENV)/.installed
	$(VENV)/bin/python bench/subsidies.py --postgres --loans 1000000 $(if $(KEEP),--keep,)
# The targets figures over 10,000,000 generated loans in 300 districts (bench/targets.py): minutes
# to generate; KEEP=1 keeps the database `ipledger_bench_targets` and later runs reuse it.
bench-targets: $(VENV)/.installed
	$(VENV)/bin/python bench/targets.py $(if $(KEEP),--keep,)

# The soak at the issue's size (docs/OPERATING.md: the soak and the crash drills), PostgreSQL.
SOAK_ARGS ?= --clients 16 --postings 1000 --borrowers 24
soak: $(VENV)/.installed
	$(VENV)/bin/python bench/soak.py $(SOAK_ARGS)

# The crash drills with a 10,000-loan batch; needs IPLEDGER_TEST_POSTGRES_URL.
crash: $(VENV)/.installed
	IPLEDGER_CRASH_BATCH_LOANS=10000 $(VENV)/bin/python -m pytest -q -s tests/test_crash_safety.py $(PYTEST_ARGS)
