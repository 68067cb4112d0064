"""The speaker gate ("свой/чужой"): speaker embeddings, voice profiles, enrolment (SPEC §2.3)."""

from cluelypro.speaker.base import SpeakerEmbedder
from cluelypro.speaker.campplus import CamPlusEmbedder
from cluelypro.speaker.enroll import (
    ENROLL_TEXT,
    MIN_VOICED_S,
    build_profile,
    enrollment_warning,
    voiced_audio,
)
from cluelypro.speaker.gate import SpeakerGate
from cluelypro.speaker.profiles import (
    ProfileError,
    VoiceProfile,
    active_profile_name,
    delete_profile,
    list_profiles,
    load_profile,
    save_profile,
    set_active,
)

__all__ = [
    "ENROLL_TEXT",
    "MIN_VOICED_S",
    "CamPlusEmbedder",
    "ProfileError",
    "SpeakerEmbedder",
    "SpeakerGate",
    "VoiceProfile",
    "active_profile_name",
    "build_profile",
    "delete_profile",
    "enrollment_warning",
    "list_profiles",
    "load_profile",
    "save_profile",
    "set_active",
    "voiced_audio",
]
