"""ktui: a terminal UI kernel trace explorer on Textual and BCC."""

__version__ = "0.1.0"
