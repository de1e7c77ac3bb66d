"""The Python sync client: an offline-first peer with a durable outbox."""
