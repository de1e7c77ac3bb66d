"""Runnable programs that measure Syncline and print and save numbers (not tests)."""
