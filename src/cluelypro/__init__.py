"""CluelyPro: a real-time voice prompter."""

__version__ = "0.1.0"
