"""Inbound webhooks (DESIGN §10): providers that push their changes instead of being polled.

``forms`` (Mailchimp's bracketed form bodies), ``cmxml`` (Campaign Monitor's XML), ``normalise``
(a provider body -> events), ``verify`` (the generic element's signatures) and ``pushed``
(events -> notifications) are pure; ``receive`` runs one request through them into the state
file, ``routes`` serves it over HTTP, ``tokens`` keeps the URL tokens and ``register`` creates
the provider-side webhooks.
"""
