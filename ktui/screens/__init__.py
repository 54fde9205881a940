"""The app's controllers, one per mode of use, so new keys and panes land in their own module.

  live.py       the session's probes keyed by source-given ids; adding, toggling, removing; the source's life
  replay.py     pause, seek, step and speed of a source that plays back (events.Playback)
  editor.py     the probe editor's requests: a catalog entry chosen, the generated C
  session.py    a session's layout restored on open; saving it back or under a new path (save as)
  recording.py  recording what the app shows to a file the user names (events.Recordable)

Each holds a reference to the app and talks to the panes through it; the app's message
handlers are one line each, forwarding here.
"""
