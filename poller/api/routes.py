"""The management API's aiohttp routes, registered from :data:`poller.api.openapi.ROUTES`.

Every request is authorised first (401 otherwise, nothing else said). Logs name the method, the
route and the status, never the Authorization header or a body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from poller.api.auth import authorized
from poller.api.manager import ApiError, Manager
from poller.api.openapi import BASE, ROUTES, document
from poller.config.types import ManagementApiConfig
from state import StateError

__all__ = ["ApiRoutes"]

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024


def _json(status: int, value: Any, **headers: str) -> web.Response:
    return web.Response(status=status, body=json.dumps(value).encode(), content_type="application/json",
                        headers={"Cache-Control": "no-store", **headers})


class ApiRoutes:
    """``api()`` and ``manager`` are read per request, so a reload applies to the next one."""

    def __init__(self, api: Callable[[], ManagementApiConfig | None], manager: Manager) -> None:
        self.api = api
        self.manager = manager

    def add(self, app: web.Application) -> None:
        app.router.add_get(BASE + "/openapi.json", self._wrap(self.openapi))  # (DESIGN §11: every request)
        for route in ROUTES:
            app.router.add_route(route.method, BASE + route.path, self._wrap(getattr(self, route.handler)))

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(200, document())

    def _wrap(self, handler: Callable[[web.Request], Awaitable[web.Response]]
              ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            api = self.api()
            if api is None:
                raise web.HTTPNotFound()
            if not authorized(request.headers.get("Authorization"), api):
                return _json(401, {"message": "Authorization: User <userSecret>, Organization "
                                              "<organizationSecret> is required"},
                             **{"WWW-Authenticate": 'Elements realm="poller"'})
            try:
                response = await handler(request)
            except ApiError as exc:
                response = _json(exc.status, exc.body())
            except StateError as exc:
                log.error("api.state_failed", extra={"error": str(exc)})
                response = _json(503, {"message": "the state file cannot be read or written now"},
                                 **{"Retry-After": "30"})
            log.info("api.request", extra={"method": request.method, "route": request.match_info.route.resource.canonical
                                           if request.match_info.route.resource else request.path,
                                           "status": response.status})
            return response
        return run

    async def _body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        body = b""
        while chunk := await request.content.readany():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        return body

    @staticmethod
    def _number(request: web.Request) -> int:
        text = request.match_info["id"]
        if not (text.isascii() and text.isdigit()) or len(text) > 18:  # (int() would take "١" too)
            raise ApiError(404, f"no instance {text[:40]!r} (ids are integers)")
        return int(text)

    async def create(self, request: web.Request) -> web.Response:
        return _json(200, self.manager.create(await self._body(request)))

    async def list(self, request: web.Request) -> web.Response:
        return _json(200, self.manager.list())

    async def get(self, request: web.Request) -> web.Response:
        return _json(200, self.manager.get(self._number(request)))

    async def patch(self, request: web.Request) -> web.Response:
        number = self._number(request)
        return _json(200, self.manager.patch(number, await self._body(request)))

    async def patch_configuration(self, request: web.Request) -> web.Response:
        number = self._number(request)
        return _json(200, self.manager.patch(number, await self._body(request), configuration_only=True))

    async def delete(self, request: web.Request) -> web.Response:
        return _json(200, self.manager.delete(self._number(request)))

    async def enable(self, request: web.Request) -> web.Response:
        return _json(200, self.manager.set_enabled(self._number(request), True))

    async def disable(self, request: web.Request) -> web.Response:
        return _json(200, self.manager.set_enabled(self._number(request), False))

    async def events(self, request: web.Request) -> web.Response:
        query = request.query
        # limit is DESIGN §11's name, pageSize Cloud Elements' own: either is taken
        limit = ("limit", query["limit"]) if "limit" in query else ("pageSize", query["pageSize"]) \
            if "pageSize" in query else None
        page, token = self.manager.events(self._number(request), limit=limit,
                                          next_page=query.get("nextPage"), status=query.get("status"))
        return _json(200, page, **({"elements-next-page-token": token} if token else {}))

    async def event(self, request: web.Request) -> web.Response:
        return _json(200, self.manager.event(self._number(request), request.match_info["eventId"]))

    async def replay(self, request: web.Request) -> web.Response:
        number = self._number(request)
        return _json(200, self.manager.replay(number, await self._body(request)))
