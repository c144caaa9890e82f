"""The management API against its own OpenAPI document, served by `poller run`: schemathesis
generates requests for every operation (a bounded number each), and no answer may be a 5xx or
differ from the document (status, content type, body schema, headers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from schemathesis.specs.openapi.checks import positive_data_acceptance

from poller.api.openapi import BASE, ROUTES
from tests.test_api_e2e import AUTH, ENV, api_config
from tests.test_daemon_e2e import DaemonProcess
from tests.test_inbound_e2e import listening

pytestmark = pytest.mark.slow
EXAMPLES = 50  # per operation: about 15 s in all


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path: Path = tmp_path_factory.mktemp("api-schema")
    with DaemonProcess(tmp_path, api_config(tmp_path), state=tmp_path / "poller.db", env=ENV) as daemon:
        yield listening(daemon)
        assert daemon.stop() == 0
        assert "Traceback" not in daemon.log(), daemon.log()


@pytest.fixture(scope="module")
def api_schema(served: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{served}{BASE}/openapi.json", headers=AUTH)
    schema.config.update(base_url=f"{served}{BASE}")
    return schema


# (schemathesis' own pytest plugin does not run on this pytest: the operations are driven here)
@pytest.mark.parametrize("route", ROUTES, ids=[r.handler for r in ROUTES])
def test_every_answer_matches_the_document(api_schema: schemathesis.BaseSchema, route: object) -> None:
    operation = api_schema[route.path][route.method]  # type: ignore[attr-defined]

    @given(operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        # a body the document allows may still be refused (400) by the checks `poller check`
        # makes, which a JSON schema cannot say (a callback URL required once enabled, ...)
        case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

    check()


def test_every_route_is_documented_once() -> None:
    from poller.api.openapi import document

    doc = document()
    served = {(r.method.lower(), r.path) for r in ROUTES}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented and len(served) == len(ROUTES) == 11
