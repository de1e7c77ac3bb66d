"""What tests and benchmarks share: a relay subprocess, Yjs peers, probes and misbehaving writers.

Importable from the repository root (pytest's rootdir, ``python -m benchmarks.X``); not
installed with the package. Nothing here imports ``tests``.

- ``relay_process``: ``syncline serve`` as a real subprocess on a loopback port, with tokens.
- ``ypeer``: a plain y-websocket peer on pycrdt, optionally asking for durable acks.
- ``hostile``: close-code, metrics and liveness checks; bystanders that must stay unharmed.
- ``probes``: RSS, store row deltas, a bystander that keeps writing and reading.
- ``writers``: raw writers that send updates out of order or under another client ID.
- ``line_writer``: a durable-ack writer adding to its own cart line, for fault tests.
- ``fuzzing``: protocol fuzz cases with the outcome the codec's rules predict.
- ``services``: PostgreSQL and Redis found, or the test skipped (failed under CI).
- ``own_services``: a Redis and a PostgreSQL server of a test's own, to crash and restart.
- ``catalog``: a price catalog loaded with ``syncline catalog load``.
"""
