"""The suite's own isolation (tests/conftest.py): a developer's cloud keys, endpoints and settings
never reach a test, and no test runs in the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluelypro import secrets
from conftest import ROOT, is_credential

OUTER_ENVIRONMENT = {
    "OPENAI_API_KEY": "sk-developer-own-key",
    "GEMINI_API_KEY": "AIza-developer-own-key",
    "OPENAI_BASE_URL": "https://api.openai.com/v1",
    "COMPATIBLE_BASE_URL": "https://llm.example/v1",
    "GOOGLE_APPLICATION_CREDENTIALS": "/home/developer/service-account.json",
    "CLUELYPRO_CONFIG": "/home/developer/cluelypro.toml",
}

# Collected (module level) before any fixture runs, so it sees what the process was given; the
# test then sees what the suite's fixtures leave.
PROBE = """
import os
from pathlib import Path

NAMES = {names!r}
GIVEN = sorted(name for name in NAMES if name in os.environ)

def test_probe(tmp_path):
    print("GIVEN", GIVEN)
    print("SEEN", sorted(name for name in NAMES if name in os.environ))
    print("CWD", Path.cwd() == tmp_path)
"""


def test_each_test_has_no_credentials_and_its_own_working_folder(tmp_path: Path) -> None:
    assert not [name for name in os.environ if is_credential(name)]
    assert Path.cwd() == tmp_path and not any(tmp_path.iterdir())


@pytest.mark.parametrize("run", ["first", "second"])
def test_a_key_registered_by_one_test_is_unknown_to_the_next(run: str) -> None:
    """Run twice: were the redaction registry shared, the second run would find the key masked."""
    key = "registered-by-one-test"
    assert secrets.redact(f"key {key}") == f"key {key}", f"{run} run: a key left by another test"
    secrets.register(key)
    assert secrets.redact(f"key {key}") == f"key {secrets.MASK}"


def test_keys_set_in_the_outer_environment_are_not_seen(tmp_path: Path) -> None:
    """A pytest run started from the repository with a developer's keys set, with the suite's
    conftest loaded as a plugin: the process gets the keys, its test does not."""
    probe = tmp_path / "probe" / "test_probe.py"
    probe.parent.mkdir()
    probe.write_text(PROBE.format(names=sorted(OUTER_ENVIRONMENT)), encoding="utf-8")
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-s", "-q", str(probe)],
        env={**os.environ, **OUTER_ENVIRONMENT, "PYTHONPATH": pythonpath},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"GIVEN {sorted(OUTER_ENVIRONMENT)}" in done.stdout, done.stdout
    assert "SEEN []" in done.stdout and "CWD True" in done.stdout, done.stdout
