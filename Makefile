# The two entry points README opens with; each sets up whatever is missing first.
.PHONY: setup setup-test demo test test-fast lint

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --test

demo: setup
	.venv/bin/cluelypro demo

test: setup-test
	.venv/bin/python -m pytest

# The quick suite: no real model is loaded and nothing replays audio in real time. Two pytest
# processes, one per core, of about equal length: the fault harness (mostly waiting on its own
# timeouts), the Hypothesis properties, a few CLI files and the web API (mostly waiting on answers
# being played) beside everything else (mostly CLI processes starting); the first one's
# report is printed after the second's.
FAST_SELECTION = -q -p no:cacheprovider -m "not slow and not live"
FAST_SHARD = tests/test_faults.py tests/test_matcher.py tests/test_normalize.py tests/test_profiles_cli.py \
             tests/test_e2e.py tests/test_web_api.py
test-fast: setup-test
	@log=$$(mktemp); \
	.venv/bin/python -m pytest $(FAST_SELECTION) $(FAST_SHARD) >"$$log" 2>&1 & shard=$$!; \
	.venv/bin/python -m pytest $(FAST_SELECTION) $(addprefix --ignore=,$(FAST_SHARD)); rest=$$?; \
	wait $$shard; shard=$$?; cat "$$log"; rm -f "$$log"; \
	[ $$rest -eq 0 ] && [ $$shard -eq 0 ]

# Style and types (CI runs it before the tests): ruff's lint and format check, mypy on src/.
lint: setup-test
	.venv/bin/ruff check src tests scripts
	.venv/bin/ruff format --check src tests scripts
	.venv/bin/mypy
