"""Syncline's relay server and the ``syncline`` command line."""
