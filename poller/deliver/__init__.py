"""Delivery of committed outbox notifications: signatures (``signing``, pure) and the sender
(retries, dead letters). Must not change cursors or run inside a poll's transaction.
"""
