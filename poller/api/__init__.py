"""The management API (DESIGN §11): Cloud Elements' ``/instances`` under ``/elements/api-v2`` on
``engine.listen``, served only when ``engine.api`` is set.

``auth`` checks the ``Authorization`` header, ``views`` turns instances and notifications into
the JSON the API answers (secrets masked), ``manager`` makes the changes (state file, then the
running daemon), ``routes`` is the aiohttp side, ``openapi`` the document served at
``/elements/api-v2/openapi.json``, built from the same route table.
"""
