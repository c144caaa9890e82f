"""One resource of ``event.poller.configuration``: url, idField, dates, paging (DESIGN.md §2, §5)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from poller import javadate, jsonpath
from poller.config import templates
from poller.config.types import DatesConfig, PaginationConfig, ResourceConfig
from poller.config.urls import http_url_problem
from poller.config.values import MAX_LOOKBACK, Context, Path, describe
from poller.errors import DateFormatError
from poller.javadate.zone import ZoneError, java_zone

__all__ = ["DATES_KEYS", "PAGINATION_TYPES", "RESOURCE_IGNORED", "RESOURCE_KEYS", "TIME_ZONE_KEYS",
           "build_resource", "is_time_zone_key"]

RESOURCE_KEYS = ("url", "idField", "datesConfiguration", "pageSize", "pollDelay", "filterByUpdatedDate",
                 "filterByUpdateDate", "filterByCurrentDate", "createdCheckTolerance", "recordsPath",
                 "pagination", "initialCursor")
# Cloud Elements (or its UiPath successor) knows these; poller does not implement them.
RESOURCE_IGNORED = ("xPath", "hooks", "preHooks", "postHooks", "postHookPipelines", "batchSize",
                    "useLastPollDate", "useHydrationBeforePostHooks", "objectName", "parameters")
DATES_KEYS = ("updatedDateField", "updatedDateFormat", "createdDateField", "createdDateFormat",
              "createdCheckTolerance")
# Matched case-insensitively, inside datesConfiguration or at resource level.
TIME_ZONE_KEYS = ("updatedDateTimezone", "createdDateTimezone")
_TZ_BY_LOWER = {k.lower(): k for k in TIME_ZONE_KEYS}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PAGINATION_COMMON = ("type", "maxPages", "pageSizeParam")
# type -> its own keys with their defaults (None: required)
PAGINATION_TYPES: dict[str, dict[str, object]] = {
    "none": {},
    "link": {},
    "nextPageToken": {"header": "elements-next-page-token", "param": "nextPage"},
    "page": {"param": "page", "start": 1, "morePath": ""},
    "offset": {"param": "offset", "start": 0, "morePath": ""},
    "cursor": {"path": None, "param": "cursor"},
    "nextUrl": {"path": None},
}
# keys that belong in "pagination": written at resource level, they get that hint
PAGINATION_HINTS = {"pageSizeParam", "maxPages", "morePath"}
_ALL_PAGINATION_KEYS = tuple(dict.fromkeys(
    list(PAGINATION_COMMON) + [k for keys in PAGINATION_TYPES.values() for k in keys]))


def is_time_zone_key(key: str) -> bool:
    return key.lower() in _TZ_BY_LOWER


def build_resource(ctx: Context, name: str, value: object, path: Path, *,
                   base: templates.Template | None, server_zone: str) -> ResourceConfig | None:
    obj = ctx.obj(value, path, "an object (the resource's poller configuration)")
    if obj is None:
        return None
    errors_before = len(ctx.errors)
    ctx.check_keys(obj, path, known=RESOURCE_KEYS, required=("url", "idField"), ignored=RESOURCE_IGNORED,
                   accept=is_time_zone_key, hints={k: f"pagination.{k}" for k in PAGINATION_HINTS})
    page_size = ctx.integer(obj["pageSize"], path + ("pageSize",)) if "pageSize" in obj else None
    url = _url(ctx, obj, path, base, server_zone, page_size)
    id_field, id_path = _id_field(ctx, obj, path)
    dates = ctx.memo("dates", [obj.get("datesConfiguration"), {k: v for k, v in obj.items() if is_time_zone_key(k)}],
                     _dates, ctx, obj, path)
    poll_delay = _optional_number(ctx, obj, path, "pollDelay", "a number of seconds", 0.0, at_most=MAX_LOOKBACK)
    by_updated = _filter_by_updated(ctx, obj, path)
    by_current = ctx.boolean(obj["filterByCurrentDate"], path + ("filterByCurrentDate",)) \
        if "filterByCurrentDate" in obj else False
    tolerance = _tolerance(ctx, obj, path)
    if by_updated is False and dates is not None and dates.created_format is None:
        ctx.warn(path, "filterByUpdatedDate is false but the resource has no created date "
                       "(datesConfiguration.createdDateField)")
    records_path = _path_value(ctx, obj, path, "recordsPath")
    pagination = ctx.memo("pagination", obj.get("pagination"), _pagination, ctx, obj, path)
    initial = _instant(ctx, obj["initialCursor"], path + ("initialCursor",)) if "initialCursor" in obj else None
    if len(ctx.errors) > errors_before or url is None or id_field is None:
        return None
    return ResourceConfig(
        name=name, url=url, id_field=id_field, id_path=id_path, dates=dates or DatesConfig(),
        page_size=page_size, poll_delay_seconds=poll_delay or 0.0,
        filter_by_updated_date=True if by_updated is None else by_updated,
        filter_by_current_date=bool(by_current), created_check_tolerance_seconds=tolerance,
        records_path=records_path, pagination=pagination or PaginationConfig(), initial_cursor=initial)


def _url(ctx: Context, obj: dict, path: Path, base: templates.Template | None, server_zone: str,
         page_size: int | None) -> templates.Template | None:
    if "url" not in obj:
        return None
    where = path + ("url",)
    resolved = ctx.spanned(obj["url"], where)
    if resolved is None:
        return None
    raw, spans = resolved
    text = raw.strip()
    shown = describe(templates.MASK if spans else text)
    if text != raw:
        ctx.warn(where, "leading or trailing white space removed")
        cut = len(raw) - len(raw.lstrip())
        spans = tuple((max(a - cut, 0), min(b - cut, len(text))) for a, b in spans)
    if not text:
        ctx.error(where, "is empty")
        return None
    scheme = text.split("://", 1)[0].lower() if "://" in text.split("?", 1)[0] else None
    if scheme is not None and scheme not in ("http", "https"):
        ctx.error(where, f"must be an http:// or https:// URL, or a path relative to api.baseUrl; "
                         f"got {shown}")
        return None
    if scheme is None and base is None:
        ctx.error(where, f"is relative ({shown}) and the instance has no api.baseUrl: set "
                         "api.baseUrl (e.g. \"https://api.example.com/v1\") or write an absolute URL")
    try:
        template = templates.parse(text, server_zone=server_zone, opaque=spans)
    except templates.TemplateError as exc:
        for problem in exc.problems:
            ctx.error(where, problem)
        return None
    if scheme is not None:
        authority = re.split(r"[/?#]", text.split("://", 1)[1], maxsplit=1)[0]
        if not authority:
            ctx.error(where, f"the URL has no host: {shown}")
            return None
        # (the origin as httpx will read it: a port past 65535 crashed the poll, a space in the
        # host or a malformed IPv6 address failed it; the checks api.baseUrl gets)
        problem = None if "${" in authority else http_url_problem(f"{scheme}://{authority}/", shown)
        if problem is not None:
            ctx.error(where, problem)
            return None
    control = _CONTROL.search(text)
    if control is not None:  # (httpx refuses them at every request; a CR LF would split the request line)
        ctx.error(where, f"the URL contains the control character {control.group()!r} at position "
                         f"{control.start()}: {shown}")
        return None
    for warning in template.warnings:
        ctx.warn(where, warning)
    for param in template.path_parameters:
        ctx.warn(where, f"unsubstituted path parameter {{{param}}}: replace it with a real value "
                        "(poller sends it as written)")
    if template.uses_page_size and page_size is None:
        ctx.error(where, "uses ${pageSize} but the resource has no pageSize")
    if scheme is None:
        return templates.join(base, template) if base is not None else None
    return template


def _id_field(ctx: Context, obj: dict, path: Path) -> tuple[str | None, tuple | None]:
    if "idField" not in obj:
        return None, None
    text = ctx.text(obj["idField"], path + ("idField",))
    if text is None:
        return None, None
    if not text.strip():
        ctx.warn(path + ("idField",), "is empty: records have no id, so this resource never emits events")
        return text, None
    return text, _parse_path(ctx, text, path + ("idField",))


def _parse_path(ctx: Context, text: str, where: Path) -> tuple | None:
    try:
        return jsonpath.parse(text)
    except jsonpath.PathError as exc:
        ctx.error(where, f"{exc.reason} at position {exc.position} of the JSON path {describe(text)}")
        return None


def _path_value(ctx: Context, obj: dict, path: Path, key: str) -> tuple | None:
    if key not in obj:
        return None
    text = ctx.text(obj[key], path + (key,))
    return None if text is None else _parse_path(ctx, text, path + (key,))


def _optional_number(ctx: Context, obj: dict, path: Path, key: str, what: str, default: float, *,
                     at_most: tuple[float, str] | None = None) -> float:
    if key not in obj:
        return default
    number = ctx.number(obj[key], path + (key,), what, at_most=at_most)
    return default if number is None else number


def _filter_by_updated(ctx: Context, obj: dict, path: Path) -> bool | None:
    values = {k: ctx.boolean(obj[k], path + (k,)) for k in ("filterByUpdatedDate", "filterByUpdateDate") if k in obj}
    if len(values) == 2 and values["filterByUpdatedDate"] != values["filterByUpdateDate"]:
        ctx.warn(path + ("filterByUpdateDate",), "contradicts filterByUpdatedDate, which is used")
    return values.get("filterByUpdatedDate", values.get("filterByUpdateDate"))


def _tolerance(ctx: Context, obj: dict, path: Path) -> float:
    dates = obj.get("datesConfiguration")
    inner = dates.get("createdCheckTolerance") if isinstance(dates, dict) else None
    outer = _optional_number(ctx, obj, path, "createdCheckTolerance", "a number of seconds", 10.0)
    if inner is None:
        return outer
    where = path + ("datesConfiguration", "createdCheckTolerance")
    number = ctx.number(inner, where, "a number of seconds")
    if number is not None and "createdCheckTolerance" in obj and number != outer:
        ctx.warn(where, f"differs from the resource's createdCheckTolerance; {number:g} s (this one) is used")
    return outer if number is None else number


def _zones(ctx: Context, obj: dict, path: Path) -> dict[str, tuple[str, Path]]:
    """Time-zone keys by canonical name -> (zone, where), looked up case-insensitively."""
    found: dict[str, tuple[str, Path]] = {}
    for key, value in obj.items():
        canonical = _TZ_BY_LOWER.get(key.lower())
        if canonical is None:
            continue
        where = path + (key,)
        if canonical in found:
            ctx.error(where, f"{canonical} is given twice (as {found[canonical][1][-1]} and {key})")
            continue
        zone = ctx.text(value, where)
        if zone is not None and zone.strip():
            found[canonical] = (zone.strip(), where)
    return found


def _dates(ctx: Context, obj: dict, path: Path) -> DatesConfig | None:
    dpath = path + ("datesConfiguration",)
    raw = obj.get("datesConfiguration")
    dates = {} if raw is None else ctx.obj(raw, dpath)
    if dates is None:
        return None
    if raw is not None:  # a format without its field is a misspelt or forgotten field
        needed = [f"{w}DateField" for w in ("updated", "created") if f"{w}DateFormat" in dates]
        ctx.check_keys(dates, dpath, known=DATES_KEYS, required=needed, accept=is_time_zone_key)
    zones = _zones(ctx, dates, dpath)
    for canonical, (zone, where) in _zones(ctx, obj, path).items():
        if canonical in zones and zones[canonical][0] != zone:
            ctx.warn(where, f"differs from datesConfiguration.{canonical}, which is used")
        zones.setdefault(canonical, (zone, where))
    bad_zone = False
    for zone, where in zones.values():
        try:
            java_zone(zone)
        except ZoneError as exc:
            ctx.error(where, templates.zone_problem(zone, exc))
            bad_zone = True
    if bad_zone:
        return None
    fields = {}
    for which in ("updated", "created"):
        fkey, pkey = f"{which}DateField", f"{which}DateFormat"
        field = ctx.text(dates[fkey], dpath + (fkey,)) if fkey in dates else None
        pattern = ctx.text(dates[pkey], dpath + (pkey,)) if pkey in dates else None
        fields[which] = (field or None, pattern or None)
    out: dict[str, object] = {}
    for which, other in (("updated", "created"), ("created", "updated")):
        field, pattern = fields[which]
        if field is None:
            continue
        fmt_key = f"{which}DateFormat"
        if pattern is None:
            pattern = fields[other][1]
            if pattern is None:
                ctx.error(dpath, f"{fmt_key} is missing (needed to read {which}DateField {describe(field)})")
                continue
        zone_key = f"{which}DateTimezone"
        other_zone = f"{other}DateTimezone"
        zone = zones.get(zone_key, zones.get(other_zone, ("UTC", ())))[0]
        out[f"{which}_field"] = field
        out[f"{which}_path"] = _parse_path(ctx, field, dpath + (f"{which}DateField",))
        out[f"{which}_format"] = _compile_date(ctx, pattern, zone, dpath + (fmt_key,))
    return DatesConfig(**out)  # type: ignore[arg-type]


def _compile_date(ctx: Context, pattern: str, zone: str, where: Path) -> javadate.DateFormat | None:
    if pattern.strip().lower() == javadate.MILLISECONDS:
        pattern = javadate.MILLISECONDS
    try:
        return javadate.compile(pattern, zone)
    except DateFormatError as exc:
        hint = ""
        if pattern.strip(" '\"").lower() == javadate.MILLISECONDS:
            hint = " (did you mean 'milliseconds'?)"
        ctx.error(where, f"{exc.reason} at position {exc.position}{hint}")
    return None


def _pagination(ctx: Context, obj: dict, path: Path) -> PaginationConfig | None:
    if "pagination" not in obj:
        return PaginationConfig()
    where = path + ("pagination",)
    pag = ctx.obj(obj["pagination"], where)
    if pag is None:
        return None
    kind = None
    if "type" in pag:
        text = ctx.text(pag["type"], where + ("type",))
        by_lower = {t.lower(): t for t in PAGINATION_TYPES}
        kind = by_lower.get((text or "").strip().lower())
        if kind is None and text is not None:
            ctx.error(where + ("type",), f"unknown pagination type {describe(text)} "
                                         f"(one of: {', '.join(PAGINATION_TYPES)})")
    own = PAGINATION_TYPES.get(kind or "", {})
    required = [k for k, v in own.items() if v is None]
    ctx.check_keys(pag, where, known=PAGINATION_COMMON + tuple(own), required=["type", *required],
                   accept=lambda k: k in _ALL_PAGINATION_KEYS)
    for key in pag:
        if key in _ALL_PAGINATION_KEYS and key not in PAGINATION_COMMON and key not in own and kind:
            ctx.warn(where + (key,), f"is not used with pagination type {kind}; ignored")
    values: dict[str, object] = {}
    for key, default in own.items():
        value = pag.get(key, default)
        if key == "start":
            values[key] = ctx.integer(value, where + (key,), positive=False)
        elif key in ("path", "morePath"):
            if key in pag:
                values["more_path" if key == "morePath" else key] = _path_value(ctx, pag, where, key)
        elif value is not None:
            values[key] = ctx.text(value, where + (key,))
    max_pages = ctx.integer(pag["maxPages"], where + ("maxPages",)) if "maxPages" in pag else 1000
    size_param = ctx.text(pag["pageSizeParam"], where + ("pageSizeParam",)) if "pageSizeParam" in pag \
        else "pageSize"
    if kind is None or max_pages is None or not size_param:
        return None
    return PaginationConfig(type=kind, max_pages=max_pages, page_size_param=size_param, **values)  # type: ignore[arg-type]


def _instant(ctx: Context, value: object, where: Path) -> datetime | None:
    """An ISO-8601 instant with an offset (``2024-01-01T00:00:00Z``) or epoch milliseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_epoch_ms(ctx, value, where)
    text = ctx.text(value, where, "an ISO-8601 instant")
    if text is None:
        return None
    stripped = text.strip()
    if stripped.lstrip("-").isdigit():
        return _from_epoch_ms(ctx, int(stripped), where)
    if stripped[-1:] in ("Z", "z"):
        stripped = stripped[:-1] + "+00:00"
    try:
        instant = datetime.fromisoformat(stripped)
    except ValueError:
        ctx.error(where, f"expected an ISO-8601 instant such as '2024-01-01T00:00:00Z', got {describe(text)}")
        return None
    if instant.tzinfo is None:
        ctx.error(where, f"{describe(text)} has no offset: add 'Z' or '+00:00'")
        return None
    return instant.astimezone(timezone.utc)


def _from_epoch_ms(ctx: Context, ms: float, where: Path) -> datetime | None:
    try:
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    except (OverflowError, ValueError):
        ctx.error(where, f"epoch milliseconds out of range: {describe(ms)}")
        return None
