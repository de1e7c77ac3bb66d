"""Reference servers that ``benchmarks.compare`` runs next to Syncline (see ``pycrdt_ws.py``)."""
