"""The two event sources side by side, behind the protocols in ``ktui/events.py``.

  live.py    LiveSource: the engine (ktui/engine/) on this machine's kernel
  replay.py  ReplaySource: recordings (and ftrace text) played back, read-only

Neither is imported here: each pulls in a lot (BCC, SQLite, threads), load the one you need.
"""
