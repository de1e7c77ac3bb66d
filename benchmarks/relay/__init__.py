"""Relay benchmarks: fan-out against the Node reference, group commit, cold room loads, RSS per room.

Run from the repository root (Node 20 and the npm packages of package.json installed there)::

    python -m benchmarks.relay                      # the default run: a few minutes on 2 cores
    python -m benchmarks.relay --quick              # smoke run, under 30 seconds
    python -m benchmarks.relay --only fanout --out /tmp/relay.json

It prints one markdown table per section and saves the whole run, with machine info, as JSON
(default ``benchmarks/runs/relay.json``) and its summary (``benchmarks/results/relay.json``). Modules:
``config`` (what runs), ``fanout``, ``commits``, ``cold_load``, ``rss`` (one per section), ``report``
(the tables) and ``__main__``. Every server is a real subprocess on a loopback
port; every workload is bounded in count and in time. Sections:

1. ``fanout`` (the headline): R rooms x C real Yjs clients (``benchmarks/js/fanout.mjs``: one
   Node process, y-websocket's ``WebsocketProvider`` over ``ws``), each editing E times a second
   for D seconds; every edit carries its send time and every other client of the room records
   its delivery latency. The same client program runs, one after the other, against
   (a) ``syncline serve`` (tokens as the ``token`` query parameter) and (b) the Node reference
   server ``@y/websocket-server``. Reported: latency p50/p95/p99/max, delivered updates per
   second, expected vs delivered deliveries, closes/errors, the server's CPU seconds over the run
   (``/proc/PID/stat`` utime+stime, every thread) and its peak RSS (``VmHWM``), and the
   Syncline/reference ratios. Syncline commits every update to SQLite (``synchronous=FULL``:
   fsync per group commit) before it broadcasts it; the reference keeps rooms in memory only.
   The machine is shared: before each run the benchmark waits (at most ``quiet_wait`` s) until
   other processes use under 0.3 cores, records how much CPU they used during the run, runs
   each server ``repeat`` times interleaved, and takes each server's least disturbed run as the
   headline. Headline clients do not offer permessage-deflate; one more pair of runs has them
   offer it, as browsers do (both servers decline it: Syncline turns it off). Shorter
   runs at lower edit rates follow. With py-spy available (and not ``--quick``), one extra
   Syncline run is sampled by ``py-spy record --gil`` and the hottest functions are listed (that
   run's numbers are not compared).
2. ``commits``: store commits per second with group commit (N concurrent writers, each awaiting
   its own commit) against one writer awaiting each commit; in process on ``SQLiteStore``, and
   through the relay with N Python peers using the durable-ack extension, each in its own room
   (no fan-out), sending one update and waiting for its ack before the next.
3. ``cold_load``: time to open a room whose store holds 1k / 10k / 100k small updates, as the
   raw log and as a snapshot plus a short tail (written with ``SQLiteStore.append`` then
   ``SQLiteStore.compact``, as the relay does). Measured through a relay that has never opened
   the room (connect -> sync step 2 received, next to a second, warm connect), and in process
   (``SQLiteStore.load`` + integrating into a pycrdt ``Doc``). Two history shapes: ``overwrite``
   (a map of 50 counters rewritten: history much larger than state) and ``append`` (one small map
   inserted into an array per update, like the cart's op array: state grows with history).
4. ``rss``: the relay's RSS with 0, K1, K2 open rooms of one small document each, when each
   room's client left (the room stays open) and when it stays connected (with and without
   permessage-deflate); per room and per connection.
"""
