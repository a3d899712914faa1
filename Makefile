# aigw-bench: `make bench` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Extra arguments for the benchmark, e.g. make bench ARGS="--targets direct,portkey --duration 30s"
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: bench test setup lint fmt clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

bench: setup  ## set up, benchmark every locally runnable target, write the report
	$(BIN)/aigw-bench run $(ARGS)

test: setup  ## set up, run the test suite (real k6, WireMock, nginx, Portkey, LiteLLM, Chromium)
	$(BIN)/aigw-bench setup --with-browser
	@# The tests that start no process (marked `pure`) two at a time, then the rest one by one: they measure,
	@# and a second test beside them would be the noise they guard against. Both parts run; either failing fails.
	$(BIN)/pytest -m pure -n 2 --dist loadfile $(PYTEST_ARGS); pure=$$?; \
	$(BIN)/pytest -m "not pure" $(PYTEST_ARGS); rest=$$?; \
	for code in $$pure $$rest; do [ $$code -eq 0 ] || [ $$code -eq 5 ] || exit 1; done  # 5: nothing selected

setup: $(VENV)/.installed  ## Python environment + the mock's and the gateways' pinned tools
	$(BIN)/aigw-bench setup

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

lint: $(VENV)/.installed  ## ruff
	$(BIN)/ruff check .

fmt: $(VENV)/.installed
	$(BIN)/ruff check --fix .

clean:  ## remove environments and installed tools (results/ is kept)
	rm -rf $(VENV) .tools
