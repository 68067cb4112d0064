"""Voice profiles: one small JSON file per enrolled voice, plus a note of the active one.

Files live in `<user data dir>/profiles/NAME.json` (`platformdirs.user_data_dir("cluelypro")`, or
the folder named by CLUELYPRO_DATA_DIR); the active profile's name is in `profiles/active`.
Writes are atomic (temporary file in the same folder, then os.replace) and owner-only (0600): a
profile is a voiceprint. A profile remembers the embedder (name and version) that made it:
embeddings of different models or front ends are not comparable, so such a profile is refused,
never silently scored. A file that cannot be a profile (not JSON, nested too deep, over 1 MB) is
reported as damaged.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from platformdirs import user_data_dir

from cluelypro.private_files import write_atomically

FORMAT = 1
ACTIVE_FILE = "active"
MAX_FILE_BYTES = 1_000_000  # a 192-dim profile is about 6 kB; anything this big is not one
_NAME = re.compile(r"^[\w][\w .-]{0,63}$")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


class ProfileError(RuntimeError):
    """A voice profile cannot be used; the message is one line a user can act on."""


@dataclass(frozen=True, eq=False)
class VoiceProfile:
    name: str
    embedder: str  # SpeakerEmbedder.name that made the embedding
    embedder_version: str  # SpeakerEmbedder.version that made it
    dim: int
    embedding: np.ndarray  # L2-normalised float32, shape (dim,)
    created: str = ""  # ISO 8601, UTC
    voiced_seconds: float = 0.0
    suggested_threshold: float = 0.5
    score_min: float = 0.0  # own cuts of the enrolment scored against the profile (leave-out)
    score_p5: float = 0.0
    score_median: float = 0.0
    score_pieces: int = 0

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "name": self.name,
            "embedder": self.embedder,
            "embedder_version": self.embedder_version,
            "dim": self.dim,
            "created": self.created,
            "voiced_seconds": round(float(self.voiced_seconds), 2),
            "suggested_threshold": round(float(self.suggested_threshold), 4),
            "self_scores": {
                "min": round(float(self.score_min), 4),
                "p5": round(float(self.score_p5), 4),
                "median": round(float(self.score_median), 4),
                "pieces": int(self.score_pieces),
            },
            "embedding": [float(x) for x in np.asarray(self.embedding, dtype=np.float32)],
        }

    @classmethod
    def from_json(cls, data: dict) -> VoiceProfile:
        """Build from parsed JSON; raises KeyError/TypeError/ValueError on anything malformed."""
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        embedding = np.asarray(data["embedding"], dtype=np.float32)
        dim = int(data["dim"])
        if embedding.shape != (dim,) or not np.all(np.isfinite(embedding)):
            raise ValueError(f"embedding has shape {embedding.shape}, expected ({dim},)")
        norm = float(np.linalg.norm(embedding))
        if not math.isclose(norm, 1.0, abs_tol=1e-3):
            raise ValueError(f"embedding is not normalised (norm {norm:.3f})")
        stats = data.get("self_scores", {})
        threshold = float(data["suggested_threshold"])
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"suggested_threshold {threshold} is outside (0, 1)")
        return cls(
            name=str(data["name"]),
            embedder=str(data["embedder"]),
            embedder_version=str(data["embedder_version"]),
            dim=dim,
            embedding=embedding,
            created=str(data.get("created", "")),
            voiced_seconds=float(data.get("voiced_seconds", 0.0)),
            suggested_threshold=threshold,
            score_min=float(stats.get("min", 0.0)),
            score_p5=float(stats.get("p5", 0.0)),
            score_median=float(stats.get("median", 0.0)),
            score_pieces=int(stats.get("pieces", 0)),
        )


def data_dir() -> Path:
    """Where user data lives (override with CLUELYPRO_DATA_DIR)."""
    override = os.environ.get("CLUELYPRO_DATA_DIR")
    return Path(override) if override else Path(user_data_dir("cluelypro"))


def profiles_dir() -> Path:
    return data_dir() / "profiles"


def validate_name(name: str) -> str:
    """The name itself if it can be a file name everywhere, else ProfileError."""
    if (
        not isinstance(name, str)
        or not _NAME.match(name)
        or name.endswith((" ", "."))
        or (name.split(".")[0].lower() in _WINDOWS_RESERVED)
    ):
        raise ProfileError(
            f"invalid profile name {name!r}: use up to 64 letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def profile_path(name: str) -> Path:
    return profiles_dir() / f"{validate_name(name)}.json"


def profile_names() -> list[str]:
    """Names of every profile file, loadable or not, sorted."""
    folder = profiles_dir()
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.json") if path.is_file())


def _unknown(name: str) -> ProfileError:
    names = profile_names()
    existing = ", ".join(names) if names else "none — create one with `cluelypro enroll`"
    return ProfileError(f"no voice profile named {name!r}; existing profiles: {existing}")


def save_profile(profile: VoiceProfile) -> Path:
    """Write (or overwrite) the profile's file atomically; returns its path."""
    path = profile_path(profile.name)
    write_atomically(path, json.dumps(profile.to_json(), ensure_ascii=False, indent=1) + "\n")
    return path


def load_profile(name: str, embedder: object | None = None) -> VoiceProfile:
    """The named profile; with `embedder`, also refuse it unless that embedder made it."""
    path = profile_path(name)
    if not path.is_file():
        raise _unknown(name)
    try:
        profile = VoiceProfile.from_json(json.loads(_read_small(path)))
    except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError, RecursionError) as error:
        reason = "it is empty" if path.stat().st_size == 0 else f"{type(error).__name__}: {error}"
        raise ProfileError(
            f"voice profile file {path} is damaged ({reason}); delete it with "
            f"`cluelypro profiles delete {name}` and re-enroll with `cluelypro enroll`"
        ) from None
    if profile.name != name:
        raise ProfileError(
            f"voice profile file {path} holds the profile {profile.name!r}, not {name!r}; "
            "re-enroll with `cluelypro enroll`"
        )
    if embedder is not None:
        check_compatible(profile, embedder)
    return profile


def _read_small(path: Path) -> str:
    """The file's text, or ValueError if it is too big to be a profile (it is never read whole)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES // 1_000_000} MB")
    return data.decode("utf-8")


def check_compatible(profile: VoiceProfile, embedder: object) -> None:
    """ProfileError unless `profile` was made by this embedder (same name, version, dim)."""
    name, version, dim = embedder.name, embedder.version, embedder.dim  # type: ignore[attr-defined]
    if (profile.embedder, profile.embedder_version, profile.dim) != (name, version, dim):
        raise ProfileError(
            f"profile {profile.name} was made by {profile.embedder} {profile.embedder_version}; "
            f"the active embedder is {name} {version}; re-enroll with `cluelypro enroll`"
        )


def list_profiles() -> list[VoiceProfile]:
    """Every loadable profile, sorted by name (damaged files are left out: load_profile says why)."""
    profiles = []
    for name in profile_names():
        try:
            profiles.append(load_profile(name))
        except ProfileError:
            continue
    return profiles


def delete_profile(name: str) -> None:
    """Delete the named profile; if it was the active one, no profile is active afterwards."""
    path = profile_path(name)
    if not path.is_file():
        raise _unknown(name)
    path.unlink()
    active = profiles_dir() / ACTIVE_FILE
    if active.is_file() and active.read_text(encoding="utf-8").strip() == name:
        active.unlink()


def set_active(name: str) -> None:
    """Make the named (existing, loadable) profile the one the speaker gate uses."""
    load_profile(name)
    write_atomically(profiles_dir() / ACTIVE_FILE, name + "\n")


def active_profile_name() -> str | None:
    """The active profile's name, or None if none is set or its file is gone."""
    active = profiles_dir() / ACTIVE_FILE
    try:
        name = active.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not name or not _NAME.match(name) or not (profiles_dir() / f"{name}.json").is_file():
        return None
    return name
