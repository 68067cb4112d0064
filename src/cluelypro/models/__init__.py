"""Stronger models one command away: the catalogue (`catalogue.py`), downloading and verifying
them (`store.py`), and pointing the settings at one (`settings_file.py`)."""
