"""Engine benchmarks: operation rates, update application, document size, load time, layouts.

Run from the repository root::

    python -m benchmarks.engine_ops                 # --ops 10000: a few minutes on 2 cores
    python -m benchmarks.engine_ops --quick         # smoke run (1000 ops), under ~20 seconds
    python -m benchmarks.engine_ops --ops 3000 --out /tmp/engine_ops.json

It prints one table per section and saves the whole run, with machine info, as JSON
(default ``benchmarks/runs/engine_ops.json``) and its summary (``benchmarks/results/engine_ops.json``).
Modules: ``workload`` (configuration, scripts, timing), ``models`` (the layouts compared),
``running``, ``rates`` (sections 1-3), ``documents`` (sections 4-8), ``__main__``. Sections:

1. ``ops``: operations per second of the domain layer (``syncline.engine``) next to a
   raw pycrdt baseline doing the same map and array writes; ``ratio`` is
   domain ops/s divided by raw ops/s.
2. ``reads``: read costs on large documents, next to ``Array.to_py()`` and
   ``json.loads(str(array))``.
3. ``scaling``: per-operation cost against document size, with one writer and with
   two writers interleaving (a sync after every operation).
4. ``apply``: every operation's update captured with ``encode_diff(doc, sv_before)``,
   then applied in order to a fresh document.
5. ``documents``: bytes (``len(doc.get_update())``) after N operations of a cart mix
   and a stock ledger, per operation, against the raw baseline, and what the
   visible content alone would take (``live``, a fresh document holding it).
6. ``load``: ``Doc().apply_update(full_update)`` then the first ``view()``.
7. ``layouts``: document growth of alternative layouts in raw pycrdt, with 1 to 3
   writers interleaving: (a) the op array (the chosen cart layout), (b) a Y.Map of
   per-client counters per line overwritten on each add, (b2) the same counters as
   flat keys of one map; (c1) an array of adjustments (the chosen ledger layout),
   (c2) a map of adjustments keyed by id, (c3) per-sku per-client level counters
   overwritten on each adjustment (no audit trail; a size reference only). The cart
   layouts also run an adds-only script (one writer), the op array's worst case.
8. ``updates``: ``read_update`` (the relay's strict pure-Python reader) on a cart
   update and on a ~1 MB document update, next to pycrdt's ``get_state(update)``.

Every workload is generated from a fixed seed, every document uses fixed client ids
and every write happens in a fixed order, so two runs write the same bytes and only
the timings move. Repeated timings report the fastest run (the host may be shared);
the JSON records the load average at the start and the end.
"""

from __future__ import annotations
