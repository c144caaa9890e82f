"""The normalised event and its notification (DESIGN.md §7, §9). Pure.

Both sides that find changes produce them (``poll/`` from polled records, soon ``inbound/``
from provider webhooks) and store the bodies in the outbox; ``deliver/`` only sends the stored
bytes. ``notify`` forms the notification bodies in the Cloud Elements shape.
"""
