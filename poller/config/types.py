"""The frozen configuration objects that :mod:`poller.config` builds (re-exported there).

Everything is parsed once at load time: date patterns are compiled :class:`DateFormat`
objects, URLs are :class:`~poller.config.templates.Template` objects and JSON paths are tuples.
Secrets (the signature key, API header values, anything that came from ``${env:...}``)
are :class:`SecretStr` values, which show as ``'***'`` in every ``repr``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from poller.config.templates import Template
from poller.javadate import DateFormat
from poller.jsonpath import Segment

__all__ = [
    "ApiConfig",
    "Config",
    "DatesConfig",
    "DeliveryConfig",
    "EngineConfig",
    "InstanceConfig",
    "LoadResult",
    "LogConfig",
    "PaginationConfig",
    "ResourceConfig",
    "RetentionConfig",
    "SecretStr",
    "VerifyConfig",
    "WebhookConfig",
    "WebhookEventsConfig",
    "WebhooksEngineConfig",
]

DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class SecretStr(str):
    """A str whose repr is masked. ``str()``, f-strings and comparisons see the real value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    batch_size: int = 10
    timeout_seconds: float = 15.0
    concurrency_per_endpoint: int = 4
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    standard_webhooks: bool = True


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long the state file keeps what is done with (days; fractions allowed)."""

    delivered_days: float = 7.0  # delivered notifications and their attempts (Cloud Elements kept 7)
    dead_days: float = 30.0  # dead letters
    inbound_days: float = 7.0  # inbound webhook requests
    removed_days: float = 30.0  # cursor and seen versions of a resource disabled or removed


@dataclass(frozen=True, slots=True)
class LogConfig:
    format: str = "text"  # text | json
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class WebhooksEngineConfig:
    """``engine.webhooks`` (DESIGN §10): where inbound webhooks arrive and how they are kept."""

    listen: tuple[str, int] | None = None  # a listener of their own (else engine.listen serves them)
    public_url: str | None = None  # the base of the URLs `poller webhooks` prints
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    dedupe_hours: float = 24.0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    state_path: str | None = None
    lookback_seconds: float = 60.0
    server_time_zone: str = "UTC"
    max_concurrent_polls: int = 16
    shutdown_timeout_seconds: float = 10.0
    listen: tuple[str, int] | None = None  # (host, port)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_clock_skew_seconds: float = 3600.0
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    log: LogConfig = field(default_factory=LogConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    webhooks: WebhooksEngineConfig = field(default_factory=WebhooksEngineConfig)
    api: ManagementApiConfig | None = None


@dataclass(frozen=True, slots=True)
class ManagementApiConfig:
    """engine.api: the management API (DESIGN §11) is served only when both secrets are set."""

    user_secret: SecretStr
    organization_secret: SecretStr


@dataclass(frozen=True, slots=True)
class ApiConfig:
    base_url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # values are SecretStr
    timeout_seconds: float = 30.0
    verify_tls: bool = True


@dataclass(frozen=True, slots=True)
class PaginationConfig:
    """How to fetch the next page. ``type``: none, link, nextPageToken, page, offset, cursor or nextUrl."""

    type: str = "none"
    param: str | None = None  # query parameter carrying the page, offset, token or cursor
    header: str | None = None  # nextPageToken: response header holding the token
    path: tuple[Segment, ...] | None = None  # cursor, nextUrl: where the next cursor or URL is in the body
    start: int | None = None  # page: first page number; offset: first offset
    max_pages: int = 1000
    page_size_param: str = "pageSize"
    more_path: tuple[Segment, ...] | None = None  # page, offset: whether more pages follow


@dataclass(frozen=True, slots=True)
class DatesConfig:
    """How to read a record's dates. A field without a format cannot occur (load fails)."""

    updated_field: str | None = None
    updated_path: tuple[Segment, ...] | None = None
    updated_format: DateFormat | None = None
    created_field: str | None = None
    created_path: tuple[Segment, ...] | None = None
    created_format: DateFormat | None = None


@dataclass(frozen=True, slots=True)
class ResourceConfig:
    name: str  # as written: it is the events' objectType
    url: Template  # absolute: api.baseUrl is already joined in
    id_field: str
    id_path: tuple[Segment, ...] | None  # None when idField is "" (records then have no id)
    dates: DatesConfig = field(default_factory=DatesConfig)
    page_size: int | None = None
    poll_delay_seconds: float = 0.0
    filter_by_updated_date: bool = True
    filter_by_current_date: bool = False
    created_check_tolerance_seconds: float = 10.0
    records_path: tuple[Segment, ...] | None = None  # None: the body must be an array
    pagination: PaginationConfig = field(default_factory=PaginationConfig)
    initial_cursor: datetime | None = None


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """``event.webhook.verify``: how a generic element's request proves where it comes from."""

    type: str = "none"  # hmac | standardwebhooks | basic | none
    header: str | None = None  # hmac: the header carrying the signature
    algorithm: str = "sha256"  # hmac: sha1 | sha256 | sha512
    encoding: str = "hex"  # hmac: hex | base64
    prefix: str = ""  # hmac: before the signature in the header, e.g. "sha256="
    secret: SecretStr | None = None  # hmac, standardwebhooks
    timestamp_header: str | None = None  # hmac over "{timestamp}.{body}"
    tolerance_seconds: float = 300.0
    username: SecretStr | None = None  # basic
    password: SecretStr | None = None


@dataclass(frozen=True, slots=True)
class WebhookEventsConfig:
    """``event.webhook.events``: how a generic element's JSON body becomes events."""

    path: tuple[Segment, ...] | None = None  # to the array of events; None: the body (or [body])
    id_path: tuple[tuple[Segment, ...], ...] = (("event_object_id",), ("id",))  # the first present
    type_path: tuple[tuple[Segment, ...], ...] = (("event_type",), ("type",))
    types: tuple[tuple[str, str], ...] = ()  # provider value -> CREATED | UPDATED | DELETED
    object_type: str = "events"
    object_type_path: tuple[Segment, ...] | None = ("event_object_type",)
    date_path: tuple[tuple[Segment, ...], ...] = (("event_date",), ("date",))
    date_format: DateFormat | None = None  # None: ISO-8601 or epoch numbers


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """What a webhook instance (DESIGN §10) receives: ``kind`` campaignmonitor, mailchimp or generic."""

    kind: str
    token: SecretStr | None = None  # event.webhook.token; None: generated once, kept in the state file
    time_zone: str = "UTC"  # event.webhook.timeZone: of dates that carry no zone
    list_ids: tuple[str, ...] = ()  # events.list.ids; empty: every list
    events: WebhookEventsConfig = field(default_factory=WebhookEventsConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    hub_key: str = ""  # the events' hubKey; "": the instance's element key (DESIGN §9)


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    id: str
    name: str
    element_key: str
    tags: tuple[str, ...] = ()
    enabled: bool = False
    vendor_type: str = "polling"  # polling | webhook | webhooks
    callback_url: str | None = None
    callback_secrets: tuple[str, ...] = field(default=(), repr=False)  # parts from ${env:...}: masked when shown
    signature_key: SecretStr | None = None
    refresh_interval_minutes: float = 15.0
    api: ApiConfig = field(default_factory=ApiConfig)
    resources: tuple[ResourceConfig, ...] = ()
    webhook: WebhookConfig | None = None  # set for webhook instances (DESIGN §10), enabled or not

    @property
    def receives_webhooks(self) -> bool:
        """True when the inbound route accepts this instance's webhooks (enabled webhook instance)."""
        return self.enabled and self.webhook is not None

    @property
    def polled(self) -> bool:
        """True when the engine polls this instance (enabled, and of vendor type polling)."""
        return self.enabled and self.vendor_type == "polling" and self.webhook is None

    @property
    def refresh_interval_seconds(self) -> float:
        return self.refresh_interval_minutes * 60.0


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    engine: EngineConfig
    instances: tuple[InstanceConfig, ...]

    def resources(self) -> Iterator[tuple[InstanceConfig, ResourceConfig]]:
        """Every (instance, resource) pair, polled or not, in file order."""
        for instance in self.instances:
            for resource in instance.resources:
                yield instance, resource


@dataclass(frozen=True, slots=True)
class LoadResult:
    config: Config
    warnings: tuple[str, ...] = ()  # each "FILE: JSON.PATH: message"
