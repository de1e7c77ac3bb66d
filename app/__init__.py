"""The composition root: the one package that sees every floor (engine, relay, adapters).

- :mod:`syncline.app.asgi`: ``create_app``, the relay with the REST and SSE adapter wired in;
- :mod:`syncline.app.cli`: the ``syncline`` command line (``serve``, ``token``, ``catalog``,
  ``client``, ``demo``).

Nothing of the project imports this package but the tests, the harness and the benchmarks.
"""
