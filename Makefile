# The two entry points README opens with; each sets up whatever is missing first.
.PHONY: setup setup-test demo test

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --test

demo: setup
	.venv/bin/cluelypro demo

test: setup-test
	.venv/bin/python -m pytest
