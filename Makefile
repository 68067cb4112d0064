# The two entry points README opens with; each sets up whatever is missing first.
.PHONY: setup setup-test demo test lint

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --test

demo: setup
	.venv/bin/cluelypro demo

test: setup-test
	.venv/bin/python -m pytest

# Style and types (CI runs it before the tests): ruff's lint and format check, mypy on src/.
lint: setup-test
	.venv/bin/ruff check src tests scripts
	.venv/bin/ruff format --check src tests scripts
	.venv/bin/mypy
