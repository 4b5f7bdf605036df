# Every target bootstraps first: a fresh Debian machine needs nothing but these commands.
VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: bootstrap run test lint bench bench-quick clean lock

bootstrap:
	@scripts/bootstrap.sh

run: bootstrap
	$(VENV)/ephemeral serve

test: bootstrap lint
	$(VENV)/python -m pytest $(PYTEST_ARGS)

lint: bootstrap
	$(VENV)/ruff check ephemeral storage workers tests bench
	$(VENV)/ruff format --check ephemeral storage workers tests bench
	$(VENV)/mypy

bench: bootstrap
	$(VENV)/python -m bench

# The core paths only, two runs each: a minute or so, for development.
bench-quick: bootstrap
	BENCH_REPEATS=2 BENCH_SKIP=delivery,rates,video BENCH_RESULT_NAME=quick $(VENV)/python -m bench

lock:
	uv pip compile pyproject.toml --python-version 3.11 -o requirements.lock
	uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements-dev.lock

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
