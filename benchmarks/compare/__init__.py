"""Syncline side by side with the relays a user would pick instead, in one run, on this machine.

Run from the repository root (Node 20 and the npm packages of package.json installed there)::

    python -m benchmarks.compare                 # the default run: about 10-15 minutes on 2 cores
    python -m benchmarks.compare --quick         # smoke run, about 2-3 minutes
    python -m benchmarks.compare --only fanout --only durability --out /tmp/compare.json
    python -m benchmarks.compare --only fanout --servers syncline,syncline-asgi --repeat 3   # the two send paths

Servers (each a subprocess on a loopback port, see ``benchmarks/peers.py``): Syncline
(``syncline serve``: SQLite store with ``synchronous=FULL``, every update committed before it
is broadcast, durable acks for clients that ask), the Node reference ``@y/websocket-server``
(rooms in memory), and a minimal pycrdt-websocket server on uvicorn with ``SQLiteYStore``
(``benchmarks/servers/pycrdt_ws.py``); when asked for (``--servers``), ``syncline-asgi``: the same
relay sending every frame through ASGI (``benchmarks/servers/syncline_asgi.py``). Each server runs
on one CPU and the Node load generators on another (``taskset``, ``benchmarks/pinning.py``) when
the machine has two; ``--no-pin`` turns that off. Clients: real Yjs clients (``benchmarks/js``) and
Python y-websocket peers (``benchmarks/peers.Peer``; the durable-ack extension with Syncline).

Workloads, every loop bounded in count and in time:

1. ``fanout``: R rooms x C Yjs clients each editing E times a second (``benchmarks/js/fanout.mjs``,
   reused from ``benchmarks.relay``): latency p50/p95/p99/max from edit to every other client's
   observe, delivered updates/s, errors, server CPU; run ``repeat`` times interleaved after
   waiting for a quiet machine, each server's least disturbed run is the headline. Then the
   same rate with fewer and more rooms (throughput vs clients), and with py-spy one profiled
   Syncline run.
2. ``saturation``: the fan-out load at rising edit rates per client (``sweep_rates``), the servers
   interleaved at every step, each until it misses a bound (every update delivered, p99 <= 100 ms):
   every step, and each server's saturation point (the last rate it passed).
3. ``capacity``: N concurrent idle connections (``benchmarks/js/conns.mjs``: sync handshake,
   then idle) in N/100 rooms against one server process: how many it holds, connect rate, RSS
   along the ramp and per connection.
4. ``cold_start``: the first sync of a room whose history is 10k / 100k updates, right after
   the server started. Syncline's store as its compaction leaves it (a snapshot plus a short
   tail) and as a raw log; pycrdt-websocket's ``SQLiteYStore`` as its checkpointing leaves it;
   the Node reference keeps rooms in memory only: its history is loaded over a WebSocket, timed
   while in memory, and the room is looked for again after a restart.
5. ``memory``: server RSS with K rooms of one small document and one connection each, and per
   connection from the capacity run.
6. ``durability``: confirmed updates per second (Syncline: durable acks; every server: the update
   seen by another client of the room) and what each server still has after a SIGKILL: N updates
   written and confirmed, ``kill -9`` at once (and after 2 s of quiet), restart, a late joiner
   counts what survived.

Prints live progress lines to stderr, one markdown table per workload with Syncline / reference
ratios to stdout, and saves the whole run as JSON (default ``benchmarks/runs/compare.json``), its
summary (``benchmarks/results/compare.json``; raw samples stay in the raw run, which git ignores)
and PNG plots: latency CDF, throughput against clients, latency and CPU per delivery against
offered rate, RSS against connections, in ``docs/images`` for the default ``--out`` and next to
``--out`` otherwise (``--plots DIR`` to choose; with matplotlib: ``pip install -e '.[bench]'``;
without it the plots are skipped).
"""

