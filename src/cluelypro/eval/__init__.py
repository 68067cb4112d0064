"""`cluelypro eval`: the quality of what the user hears — ASR accuracy and the theses' facts,
with the checks a Russian TTS needs (SPEC §6, issue 12)."""
