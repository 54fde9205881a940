"""Several hosts in one view: the remote engine's stream (``stream.py``), its frames
(``protocol.py``), the ssh links and their clock offsets (``hosts.py``, ``clock.py``)."""
