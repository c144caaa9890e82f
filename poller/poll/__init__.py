"""One resource's poll: fetch and pagination through an injected httpx client, detection (pure),
the engine (state -> fetch -> detect -> one transaction per page), explain, and ``poll_all``.

Must not send callbacks: what a poll finds goes to the outbox, which ``deliver/`` reads.
"""
