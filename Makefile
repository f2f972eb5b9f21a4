# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo serve test lint bench clean

demo: $(VENV)/.installed
	$(BIN)/m2mhub demo

serve: $(VENV)/.installed
	$(BIN)/m2mhub serve

test: $(VENV)/.installed
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python bench/ingest_http.py
	$(BIN)/python bench/queries.py
	$(BIN)/python bench/ingest_mqtt.py
	$(BIN)/python bench/ingest_mqtt.py --batch 10 --messages 60000 --embedded-messages 3000
	$(BIN)/python bench/commands_mqtt.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/trackers.py
	$(BIN)/python bench/billing.py

# npm ci: the console's front-end libraries as locked, copied to src/m2mhub/web/static/vendor/.
$(VENV)/.installed: pyproject.toml src/m2mhub/web/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	cd src/m2mhub/web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
	rm -rf src/m2mhub/web/node_modules src/m2mhub/web/static/vendor
