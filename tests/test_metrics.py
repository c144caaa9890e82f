"""poller.daemon.metrics: what each observation does to the exposition, read back with prometheus-client's
own parser."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from poller.daemon.metrics import CONTENT_TYPE, Metrics
from poller.deliver.sender import DeliveryResult
from poller.poll.detect import Skips
from poller.poll.engine import PollOutcome

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
ALLOWED_LABELS = {"instance", "resource", "outcome", "type", "reason", "status", "le"}


@dataclass
class TypedOutcome(PollOutcome):
    """PollOutcome with the per-type event counts proposed for poller.poll.engine."""

    events_by_type: dict[str, int] = field(default_factory=dict)


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def outcome(**kw: object) -> TypedOutcome:
    kw.setdefault("duration_s", 0.3)
    return TypedOutcome("acme/contacts", **kw)  # type: ignore[arg-type]


def delivery(ok: bool, *, dead: bool = False, duration_ms: int = 40, url: str = "https://hooks.example/x") -> DeliveryResult:
    upcoming = None if ok or dead else NOW_MS + 10_000
    return DeliveryResult("n-1", "acme/contacts", url, ok, 200 if ok else 500, None if ok else "HTTP 500",
                          duration_ms, upcoming)


R = {"instance": "acme", "resource": "contacts"}


def test_a_fresh_registry_has_every_family_and_nothing_else() -> None:
    metrics = Metrics()
    families = {f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())}
    assert families == {
        "poller_polls": "counter", "poller_poll_duration_seconds": "histogram",
        "poller_records_fetched": "counter", "poller_events_detected": "counter",
        "poller_duplicates_suppressed": "counter", "poller_records_skipped": "counter",
        "poller_date_fallbacks": "counter", "poller_provider_anomalies": "counter", "poller_cursor_lag_seconds": "gauge",
        "poller_provider_clock_skew_seconds": "gauge", "poller_deliveries": "counter",
        "poller_delivery_duration_seconds": "histogram", "poller_outbox_notifications": "gauge",
        "poller_outbox_resource_notifications": "gauge", "poller_inbound_requests": "counter",
        "poller_inbound_events": "counter", "poller_inbound_ack_seconds": "histogram",
    }
    assert samples(metrics) == {("poller_outbox_notifications", frozenset({("status", "pending")})): 0,
                                ("poller_outbox_notifications", frozenset({("status", "dead")})): 0}
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_inbound_requests_events_and_ack_latency_are_counted() -> None:
    metrics = Metrics()
    metrics.observe_inbound("cm", "accepted", {"CREATED": 2, "UPDATED": 1}, 0.004)
    metrics.observe_inbound("cm", "duplicate", {}, 0.002)
    metrics.observe_inbound("", "not_found", {}, 0.0001)
    assert value(metrics, "poller_inbound_requests_total", instance="cm", outcome="accepted") == 1
    assert value(metrics, "poller_inbound_requests_total", instance="cm", outcome="duplicate") == 1
    assert value(metrics, "poller_inbound_requests_total", instance="", outcome="not_found") == 1
    assert value(metrics, "poller_inbound_events_total", instance="cm", type="CREATED") == 2
    assert value(metrics, "poller_inbound_events_total", instance="cm", type="UPDATED") == 1
    assert value(metrics, "poller_inbound_ack_seconds_count") == 3
    assert value(metrics, "poller_inbound_ack_seconds_bucket", le="0.0025") == 2


def test_each_metrics_has_its_own_registry_and_the_global_one_is_untouched() -> None:
    a, b = Metrics(), Metrics()
    a.observe_poll("acme", "contacts", outcome(records=3), NOW)
    assert value(a, "poller_polls_total", **R, outcome="ok") == 1
    assert value(b, "poller_polls_total", **R, outcome="ok") is None
    assert a.registry is not prometheus_client.REGISTRY
    assert b"poller_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


def test_a_successful_poll() -> None:
    metrics = Metrics()
    skips = Skips(no_id=1, bad_date=2, before_since=0, in_future=0, seen=7)
    metrics.observe_poll("acme", "contacts", outcome(records=12, events=3, events_by_type={"CREATED": 1, "UPDATED": 2},
                                                     fallbacks=2, skips=skips, cursor_ms=NOW_MS - 90_000,
                                                     clock_skew_ms=-2500, duration_s=0.3), NOW)
    got = samples(metrics)

    def v(name: str, **extra: str) -> float | None:
        return got.get((name, frozenset({**R, **extra}.items())))

    assert [v("poller_polls_total", outcome=o) for o in ("ok", "failed", "baseline")] == [1, 0, 0]
    assert v("poller_records_fetched_total") == 12
    assert (v("poller_events_detected_total", type="CREATED"), v("poller_events_detected_total", type="UPDATED")) == (1, 2)
    assert v("poller_duplicates_suppressed_total") == 7
    assert {r: v("poller_records_skipped_total", reason=r) for r in ("no_id", "bad_date", "before_since", "in_future")} \
        == {"no_id": 1, "bad_date": 2, "before_since": None, "in_future": None}  # a reason appears once it happens
    assert v("poller_date_fallbacks_total") == 2
    assert v("poller_cursor_lag_seconds") == 90
    assert v("poller_provider_clock_skew_seconds") == -2.5
    assert v("poller_poll_duration_seconds_count") == 1
    assert v("poller_poll_duration_seconds_sum") == pytest.approx(0.3)
    assert [v("poller_deliveries_total", outcome=o) for o in ("delivered", "retry", "dead")] == [0, 0, 0]


def test_counters_add_up_over_polls() -> None:
    metrics = Metrics()
    for n in (5, 7):
        metrics.observe_poll("acme", "contacts", outcome(records=n, events=1, events_by_type={"UPDATED": 1},
                                                         skips=Skips(seen=n)), NOW)
    assert value(metrics, "poller_polls_total", **R, outcome="ok") == 2
    assert value(metrics, "poller_records_fetched_total", **R) == 12
    assert value(metrics, "poller_events_detected_total", **R, type="UPDATED") == 2
    assert value(metrics, "poller_duplicates_suppressed_total", **R) == 12


def test_baseline_and_failed_polls() -> None:
    metrics = Metrics()
    metrics.observe_poll("acme", "contacts", outcome(baseline=True, records=40), NOW)
    metrics.observe_poll("acme", "contacts", outcome(ok=False, baseline=True, error="HTTP 500"), NOW)
    metrics.observe_poll("acme", "contacts", outcome(ok=False, error="HTTP 500"), NOW)
    assert [value(metrics, "poller_polls_total", **R, outcome=o) for o in ("ok", "failed", "baseline")] == [0, 2, 1]
    assert value(metrics, "poller_poll_duration_seconds_count", **R) == 3


def test_cursor_lag_keeps_growing_while_the_resource_fails() -> None:
    metrics = Metrics()
    metrics.observe_poll("acme", "contacts", outcome(ok=False, error="down"), NOW)
    assert value(metrics, "poller_cursor_lag_seconds", **R) is None  # no cursor known yet
    metrics.observe_poll("acme", "contacts", outcome(cursor_ms=NOW_MS - 30_000), NOW)
    assert value(metrics, "poller_cursor_lag_seconds", **R) == 30
    metrics.observe_poll("acme", "contacts", outcome(ok=False, error="down"), NOW + timedelta(minutes=5))
    assert value(metrics, "poller_cursor_lag_seconds", **R) == 330


def test_clock_skew_is_kept_when_a_response_has_no_date() -> None:
    metrics = Metrics()
    metrics.observe_poll("acme", "contacts", outcome(clock_skew_ms=1200), NOW)
    metrics.observe_poll("acme", "contacts", outcome(clock_skew_ms=None), NOW)
    assert value(metrics, "poller_provider_clock_skew_seconds", **R) == 1.2


def test_poll_duration_buckets_are_cumulative_and_bounds_inclusive() -> None:
    metrics = Metrics()
    for seconds in (0.05, 0.1, 0.7, 45.0, 500.0):
        metrics.observe_poll("acme", "contacts", outcome(duration_s=seconds), NOW)
    bucket = {le: value(metrics, "poller_poll_duration_seconds_bucket", **R, le=le)
              for le in ("0.1", "0.25", "1.0", "30.0", "60.0", "+Inf")}
    assert bucket == {"0.1": 2, "0.25": 2, "1.0": 3, "30.0": 3, "60.0": 4, "+Inf": 5}
    assert value(metrics, "poller_poll_duration_seconds_sum", **R) == pytest.approx(545.85)


def test_events_are_counted_by_type() -> None:
    metrics = Metrics()
    outcome = PollOutcome("acme/contacts", events=4)
    outcome.events_by_type.update({"CREATED": 3, "UPDATED": 1})
    metrics.observe_poll("acme", "contacts", outcome, NOW)
    assert value(metrics, "poller_events_detected_total", **R, type="CREATED") == 3
    assert value(metrics, "poller_events_detected_total", **R, type="UPDATED") == 1


def test_deliveries_by_outcome_and_duration_per_instance() -> None:
    metrics = Metrics()
    metrics.observe_delivery("acme", "contacts", delivery(True, duration_ms=20))
    metrics.observe_delivery("acme", "contacts", delivery(False, duration_ms=300))
    metrics.observe_delivery("acme", "contacts", delivery(False, dead=True, duration_ms=40))
    metrics.observe_delivery("acme", "deals", delivery(True, duration_ms=20))
    assert [value(metrics, "poller_deliveries_total", **R, outcome=o) for o in ("delivered", "retry", "dead")] \
        == [1, 1, 1]
    assert value(metrics, "poller_deliveries_total", instance="acme", resource="deals", outcome="delivered") == 1
    assert value(metrics, "poller_delivery_duration_seconds_count", instance="acme") == 4
    assert value(metrics, "poller_delivery_duration_seconds_bucket", instance="acme", le="0.025") == 2
    assert value(metrics, "poller_delivery_duration_seconds_sum", instance="acme") == pytest.approx(0.38)
    assert value(metrics, "poller_polls_total", **R, outcome="ok") == 0  # the resource's series exist at 0


def test_outbox_totals_and_per_resource() -> None:
    metrics = Metrics()
    metrics.set_outbox({"pending": 5, "delivered": 100, "dead": 2})
    assert value(metrics, "poller_outbox_notifications", status="pending") == 5
    assert value(metrics, "poller_outbox_notifications", status="dead") == 2
    assert value(metrics, "poller_outbox_notifications", status="delivered") is None
    metrics.set_outbox({"pending": 5, "dead": 2}, by_resource={("acme", "contacts"): {"pending": 4, "dead": 2},
                                                               ("acme", "deals"): {"pending": 1}})
    assert value(metrics, "poller_outbox_resource_notifications", **R, status="pending") == 4
    assert value(metrics, "poller_outbox_resource_notifications", instance="acme", resource="deals",
                 status="dead") == 0
    metrics.set_outbox({}, by_resource={("acme", "deals"): {"pending": 1}})
    assert value(metrics, "poller_outbox_resource_notifications", **R, status="pending") == 0  # drained
    assert value(metrics, "poller_outbox_notifications", status="pending") == 0


def test_forget_drops_a_resources_series() -> None:
    metrics = Metrics()
    metrics.observe_poll("acme", "contacts", outcome(records=1), NOW)
    metrics.observe_poll("acme", "deals", outcome(records=1), NOW)
    metrics.forget("acme", "contacts")
    resources = {dict(labels).get("resource") for _, labels in samples(metrics)}
    assert resources == {None, "deals"}


def test_names_and_labels_follow_the_conventions_and_carry_no_secrets() -> None:
    metrics = Metrics()
    secret = "tok3n-S3CRET"
    metrics.observe_poll("acme", "contacts", outcome(ok=False, error=f"GET https://api.example/?apikey={secret}: 401"),
                         NOW)
    metrics.observe_delivery("acme", "contacts", DeliveryResult("n-1", "acme/contacts",
                                                                f"https://hooks.example/?token={secret}", False, None,
                                                                f"ConnectError: {secret}", 5, None))
    text = metrics.render().decode()
    assert secret not in text and "hooks.example" not in text and "api.example" not in text
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("poller_")
        assert ("_seconds" in family.name) == (family.type == "histogram" or family.name.endswith("_seconds"))
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS, s
            if family.type == "counter":
                assert s.name.endswith("_total")
    assert 'instance="acme"' in text and 'resource="contacts"' in text


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.observe_poll('in"st', "a\\b\nc", outcome(records=1), NOW)
    assert value(metrics, "poller_records_fetched_total", instance='in"st', resource="a\\b\nc") == 1


def test_render_from_another_thread_while_observing() -> None:
    metrics = Metrics()
    for i in range(200):
        metrics.observe_poll("acme", f"r{i}", outcome(records=1), NOW)
    errors: list[BaseException] = []
    renders: list[bytes] = []
    done = threading.Event()

    def scrape() -> None:
        try:
            while not done.is_set() or not renders:
                renders.append(metrics.render())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=scrape)
    thread.start()
    for i in range(1000):
        metrics.observe_poll("acme", f"n{i}", outcome(records=1), NOW)
    done.set()
    thread.join()
    assert errors == [] and renders
    list(text_string_to_metric_families(renders[0].decode()))  # a render made while observing is whole
    assert b'poller_records_fetched_total{instance="acme",resource="n999"} 1.0' in metrics.render()
