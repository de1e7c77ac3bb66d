"""Syncline's adapters: REST and SSE views for legacy clients, and the Python sync client."""
