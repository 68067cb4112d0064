"""`cluelypro bench`: voice-to-voice latency over a corpus of recordings (SPEC §4, §6).

corpus.py    which recordings: a folder, or the default (exam questions + shared Russian clips)
runner.py    each recording replayed in real time through the pipeline, engines loaded once
baseline.py  the same engines one after another, no streaming (the comparison)
report.py    p50/p95 per stage, tables, JSON and the latency waterfall
"""
