"""Prometheus metrics of one daemon: what the polls and deliveries did, per instance and resource.

A :class:`Metrics` owns its own ``CollectorRegistry`` (never prometheus-client's global
default), so two daemons or two tests in one process never share a number. The daemon builds
one and feeds it outcomes it already has: ``observe_poll`` after each poll, ``observe_delivery``
after each attempt, ``set_outbox`` after each delivery pass. Nothing here reads the clock.

The numbers live in plain per-resource rows and become counter, gauge and histogram families
only when scraped (prometheus-client's "custom collector"): a labelled ``Counter`` child costs
about 600 bytes and a histogram child 3 KB, some 11 KB a resource, 110 MB at the 10,000
resources the daemon is built for; a row costs about 1 KB. Observing happens on the event loop,
rendering may happen in a worker thread; a lock keeps the two apart.

Labels carry only the instance id and the resource name from the configuration, plus a small
fixed vocabulary (outcome, type, reason, status): never URLs, error texts or headers, which
can hold tokens.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from poller.deliver.sender import DeliveryResult
    from poller.poll.detect import Skips

__all__ = ["Metrics", "CONTENT_TYPE", "LABELS", "POLL_OUTCOMES", "EVENT_TYPES", "SKIP_REASONS",
           "DELIVERY_OUTCOMES", "OUTBOX_STATUSES", "POLL_BUCKETS", "DELIVERY_BUCKETS"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# DESIGN §9 names the label `instance`; Prometheus renames it `exported_instance` on scrape
# unless the job sets honor_labels (its own `instance` label is the scraped host:port)
LABELS = ("instance", "resource")
POLL_OUTCOMES = ("ok", "failed", "baseline")
EVENT_TYPES = ("CREATED", "UPDATED")
SKIP_REASONS = ("no_id", "bad_date", "before_since", "in_future", "too_deep")  # `seen`: poller_duplicates_suppressed_total
DELIVERY_OUTCOMES = ("delivered", "retry", "dead")
OUTBOX_STATUSES = ("pending", "dead")
# few buckets: per resource, a histogram is most of the exposition
POLL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DELIVERY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# inbound webhooks: outcomes of a request, and how long it took to answer it
INBOUND_OUTCOMES = ("accepted", "duplicate", "handshake", "rejected", "unauthorized", "not_found", "too_large",
                    "unsupported", "timeout", "aborted", "unavailable")
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PollOutcomeLike(Protocol):
    """The fields of :class:`poller.poll.engine.PollOutcome` read here."""

    ok: bool
    baseline: bool
    records: int
    events: int
    events_by_type: Mapping[str, int]
    fallbacks: int
    skips: Skips
    cursor_ms: int | None
    clock_skew_ms: int | None
    duration_s: float


@dataclass
class _Histogram:
    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; the last is +Inf
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: a value on a bound is in that bucket
        self.total += value

    def copy(self) -> _Histogram:
        return _Histogram(self.bounds, list(self.counts), self.total)

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            running += count
            out.append((floatToGoString(bound), running))
        return out


@dataclass
class _Row:
    """One resource's numbers."""

    polls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(POLL_OUTCOMES, 0))
    duration: _Histogram = field(default_factory=lambda: _Histogram(POLL_BUCKETS))
    records: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_TYPES, 0))
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # only reasons that happened
    fallbacks: int = 0
    cursor_ms: int | None = None
    cursor_lag_s: float | None = None
    clock_skew_s: float | None = None
    deliveries: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DELIVERY_OUTCOMES, 0))
    outbox: dict[str, int] | None = None  # per status, when the daemon gives counts per resource
    anomalies: dict[str, int] = field(default_factory=dict)  # only kinds that happened

    def copy(self) -> _Row:
        return _Row(dict(self.polls), self.duration.copy(), self.records, dict(self.events), self.duplicates,
                    dict(self.skipped), self.fallbacks, self.cursor_ms, self.cursor_lag_s, self.clock_skew_s,
                    dict(self.deliveries), None if self.outbox is None else dict(self.outbox), dict(self.anomalies))


@dataclass
class _Inbound:
    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (instance, outcome)
    events: dict[tuple[str, str], int] = field(default_factory=dict)  # (instance, type)
    ack: _Histogram = field(default_factory=lambda: _Histogram(ACK_BUCKETS))

    def copy(self) -> _Inbound:
        return _Inbound(dict(self.requests), dict(self.events), self.ack.copy())


class Metrics:
    """The daemon's metrics, in a registry of their own; see the README for each one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], _Row] = {}
        self._delivery_durations: dict[str, _Histogram] = {}
        self._outbox: dict[str, int] = dict.fromkeys(OUTBOX_STATUSES, 0)
        self._inbound = _Inbound()
        self.registry.register(_Collector(self))  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<Metrics {len(self._rows)} resources>"

    # -- observations (on the event loop) -------------------------------------------------------

    def observe_poll(self, instance_id: str, resource: str, outcome: PollOutcomeLike, now: datetime) -> None:
        """Count one finished poll. ``now`` (aware) is when it finished, for the cursor lag."""
        kind = "failed" if not outcome.ok else "baseline" if outcome.baseline else "ok"
        with self._lock:
            row = self._row(instance_id, resource)
            row.polls[kind] += 1
            row.duration.observe(max(0.0, outcome.duration_s))
            row.records += outcome.records
            for event_type, count in _event_counts(outcome).items():
                row.events[event_type] = row.events.get(event_type, 0) + count
            row.duplicates += outcome.skips.seen
            for reason in SKIP_REASONS:
                if count := getattr(outcome.skips, reason):
                    row.skipped[reason] = row.skipped.get(reason, 0) + count
            row.fallbacks += outcome.fallbacks
            for kind, count in _anomalies(outcome).items():
                if count:
                    row.anomalies[kind] = row.anomalies.get(kind, 0) + count
            if outcome.clock_skew_ms is not None:
                row.clock_skew_s = outcome.clock_skew_ms / 1000
            if outcome.cursor_ms is not None:
                row.cursor_ms = outcome.cursor_ms
            if row.cursor_ms is not None:  # a failing resource's lag keeps growing from its last cursor
                row.cursor_lag_s = now.timestamp() - row.cursor_ms / 1000

    def observe_delivery(self, instance_id: str, resource: str, result: DeliveryResult) -> None:
        """Count one delivery attempt."""
        kind = "delivered" if result.ok else "dead" if result.dead else "retry"
        with self._lock:
            self._row(instance_id, resource).deliveries[kind] += 1
            histogram = self._delivery_durations.get(instance_id)
            if histogram is None:
                histogram = self._delivery_durations[instance_id] = _Histogram(DELIVERY_BUCKETS)
            histogram.observe(max(0, result.duration_ms) / 1000)

    def observe_inbound(self, instance_id: str, outcome: str, events: Mapping[str, int], seconds: float) -> None:
        """Count one inbound request (``instance_id`` "" when the URL named no known instance:
        a label taken from an unauthenticated URL would let anyone add series)."""
        with self._lock:
            inbound = self._inbound
            key = (instance_id, outcome)
            inbound.requests[key] = inbound.requests.get(key, 0) + 1
            for event_type, count in events.items():
                inbound.events[(instance_id, event_type)] = inbound.events.get((instance_id, event_type), 0) + count
            inbound.ack.observe(max(0.0, seconds))

    def set_outbox(self, counts: Mapping[str, int], *,
                   by_resource: Mapping[tuple[str, str], Mapping[str, int]] | None = None) -> None:
        """Set the outbox gauges from ``Store.outbox_counts()`` (totals by status). ``by_resource``,
        keyed by (instance id, resource), is the whole picture when given: a resource missing from
        it has nothing pending or dead."""
        with self._lock:
            self._outbox = {status: int(counts.get(status, 0)) for status in OUTBOX_STATUSES}
            if by_resource is None:
                return
            for key, row in self._rows.items():
                if row.outbox is not None and key not in by_resource:
                    row.outbox = dict.fromkeys(OUTBOX_STATUSES, 0)
            for (instance_id, resource), per_status in by_resource.items():
                row = self._row(instance_id, resource)
                row.outbox = {status: int(per_status.get(status, 0)) for status in OUTBOX_STATUSES}

    def forget(self, instance_id: str, resource: str) -> None:
        """Drop a resource's series (a reload removed it), so that they stop being exported."""
        with self._lock:
            self._rows.pop((instance_id, resource), None)

    # -- exposition (any thread) ----------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition format, version 0.0.4 (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def _snapshot(self) -> tuple[dict[tuple[str, str], _Row], dict[str, _Histogram], dict[str, int], _Inbound]:
        with self._lock:
            return ({key: row.copy() for key, row in self._rows.items()},
                    {key: h.copy() for key, h in self._delivery_durations.items()}, dict(self._outbox),
                    self._inbound.copy())

    def _row(self, instance_id: str, resource: str) -> _Row:
        row = self._rows.get((instance_id, resource))
        if row is None:
            row = self._rows[(instance_id, resource)] = _Row()
        return row


def _event_counts(outcome: PollOutcomeLike) -> Mapping[str, int]:
    return outcome.events_by_type


def _anomalies(outcome: PollOutcomeLike) -> dict[str, int]:
    """What a poll found wrong with the provider's answers, by ANOMALY kind (a poll outcome
    without these fields counts none)."""
    return {"pagination_incomplete": getattr(outcome, "incomplete_pages", 0),
            "clock_skew_ignored": int(getattr(outcome, "clock_skew_ignored_ms", None) is not None),
            "future_stamp": getattr(outcome, "future_stamps", 0)}


class _Collector:
    """Turns a snapshot of the rows into metric families, one family at a time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return self._families({}, {}, {}, _Inbound())

    def collect(self) -> Iterator[Metric]:
        return self._families(*self.metrics._snapshot())

    def _families(self, rows: dict[tuple[str, str], _Row], deliveries: dict[str, _Histogram],
                  outbox: dict[str, int], inbound: _Inbound) -> Iterator[Metric]:
        labels = list(LABELS)
        items = sorted(rows.items())

        def counter(name: str, doc: str, value: str) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=labels)
            for key, row in items:
                family.add_metric(key, getattr(row, value))
            return family

        def by_label(family: CounterMetricFamily | GaugeMetricFamily, value: str) -> Metric:
            for key, row in items:
                for name, count in (getattr(row, value) or {}).items():
                    family.add_metric((*key, name), count)
            return family

        def gauge(name: str, doc: str, value: str) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=labels)
            for key, row in items:
                if getattr(row, value) is not None:
                    family.add_metric(key, getattr(row, value))
            return family

        yield by_label(CounterMetricFamily(
            "poller_polls", "Polls finished, by outcome (baseline: a first poll, which records what exists "
            "and emits nothing).", labels=[*labels, "outcome"]), "polls")
        duration = HistogramMetricFamily("poller_poll_duration_seconds", "Wall time of one poll, all its pages.",
                                         labels=labels)
        for key, row in items:
            duration.add_metric(key, row.duration.buckets(), row.duration.total)
        yield duration
        yield counter("poller_records_fetched", "Records returned by the provider.", "records")
        yield by_label(CounterMetricFamily("poller_events_detected", "Events detected, by type.",
                                           labels=[*labels, "type"]), "events")
        yield counter("poller_duplicates_suppressed", "Records whose version was already seen, so no event.",
                      "duplicates")
        yield by_label(CounterMetricFamily("poller_records_skipped", "Records passed over, by reason.",
                                           labels=[*labels, "reason"]), "skipped")
        yield counter("poller_date_fallbacks", "Record dates that did not match their configured pattern and "
                      "were read as ISO-8601 text or an epoch number instead.", "fallbacks")
        yield by_label(CounterMetricFamily(
            "poller_provider_anomalies", "What the provider sent that poller does not trust, by kind: "
            "pagination_incomplete (a full page, and no next page), clock_skew_ignored (a Date further from "
            "our clock than engine.maxClockSkewSeconds), future_stamp (an event stamped beyond it).",
            labels=[*labels, "kind"]), "anomalies")
        yield gauge("poller_cursor_lag_seconds", "Time of the resource's last poll minus its cursor.",
                    "cursor_lag_s")
        yield gauge("poller_provider_clock_skew_seconds", "The provider's Date header minus our clock, at the "
                    "last poll whose response had one.", "clock_skew_s")
        yield by_label(CounterMetricFamily(
            "poller_deliveries", "Delivery attempts, by outcome (dead: the attempt failed and none is left, "
            "a dead letter).", labels=[*labels, "outcome"]), "deliveries")
        delivery = HistogramMetricFamily("poller_delivery_duration_seconds", "Wall time of one delivery "
                                         "attempt, per instance (whose callback URL it measures).",
                                         labels=["instance"])
        for instance_id, histogram in sorted(deliveries.items()):
            delivery.add_metric([instance_id], histogram.buckets(), histogram.total)
        yield delivery
        totals = GaugeMetricFamily("poller_outbox_notifications", "Notifications in the outbox, by status, "
                                   "all resources.", labels=["status"])
        for status, count in outbox.items():
            totals.add_metric([status], count)
        yield totals
        yield by_label(GaugeMetricFamily("poller_outbox_resource_notifications", "Notifications in the outbox, "
                                         "by status, per resource.", labels=[*labels, "status"]), "outbox")
        requests = CounterMetricFamily(
            "poller_inbound_requests", "Inbound webhook requests, by outcome (instance \"\" when the URL named "
            "no known instance).", labels=["instance", "outcome"])
        for (instance_id, outcome), count in sorted(inbound.requests.items()):
            requests.add_metric([instance_id, outcome], count)
        yield requests
        events = CounterMetricFamily("poller_inbound_events", "Events announced from inbound webhooks, by type.",
                                     labels=["instance", "type"])
        for (instance_id, event_type), count in sorted(inbound.events.items()):
            events.add_metric([instance_id, event_type], count)
        yield events
        ack = HistogramMetricFamily("poller_inbound_ack_seconds", "From an inbound request read to its answer "
                                    "(persisting included).")
        if any(inbound.ack.counts):  # (no series at all before the first request, as for the labelled ones)
            ack.add_metric([], inbound.ack.buckets(), inbound.ack.total)
        yield ack
