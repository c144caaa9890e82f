"""Persistent state of the poller (SQLite). Never imports :mod:`poller`."""
