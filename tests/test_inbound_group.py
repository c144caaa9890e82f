"""Group commit of inbound requests: the requests ready in one turn of the loop share one
transaction; each gets its own answer, in order, and a failed commit fails them all (503)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from poller.config import load_config_text
from poller.inbound.group import GroupCommit
from poller.inbound.receive import Receiver
from state import StateError, Store, open_store

NOW_MS = 1_700_000_000_000


def _config() -> tuple[Any, Any]:
    body = {"element": {"key": "campaignmonitor"}, "name": "cm", "configuration": {
        "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/cb"}}
    config = load_config_text(json.dumps(body), "config.json", {}).config
    return config, config.instances[0]


def _cm(*emails: str) -> bytes:
    return json.dumps({"ListID": "L1", "Events": [
        {"Type": "Subscribe", "EmailAddress": e, "Date": "2024-03-01 10:00:00"} for e in emails]}).encode()


class Counting(Store):
    groups: list[int]
    fail: bool

    def record_inbound_many(self, writes: Any) -> Any:
        self.groups.append(len(writes))
        if self.fail:
            raise StateError("disk I/O error")
        return super().record_inbound_many(writes)


def _counting(path: Path, *, fail: bool = False) -> Store:
    store = open_store(path)
    store.__class__ = Counting
    store.groups, store.fail = [], fail  # type: ignore[attr-defined]
    return store


def _post(receiver: Receiver, instance: Any, body: bytes, at: int) -> Any:
    return receiver.receive_async(instance, "POST", "application/json", [], body, at)


def test_requests_ready_together_share_one_commit_and_keep_their_order(tmp_path: Path) -> None:
    config, instance = _config()
    store = _counting(tmp_path / "poller.db")
    try:
        receiver = Receiver(store, config)

        async def main() -> list[Any]:
            return await asyncio.gather(_post(receiver, instance, _cm("a@x", "b@x"), NOW_MS),
                                        _post(receiver, instance, _cm("b@x"), NOW_MS + 1),  # b: in the same group
                                        _post(receiver, instance, _cm("c@x"), NOW_MS + 2))

        answers = asyncio.run(main())
        assert store.groups == [3]  # type: ignore[attr-defined]
        assert [(a.status, a.outcome, a.notifications) for a in answers] == [
            (200, "accepted", 1), (200, "duplicate", 0), (200, "accepted", 1)]
        # (b's second coming made the group's commit start again, finding out which are new)
        assert [dict(a.events) for a in answers] == [{"CREATED": 2}, {}, {"CREATED": 1}]
        notes = store.notifications()
        assert [n.notification.seq for n in notes] == [1, 2]  # one queue, in arrival order
        assert [len(n.notification.event_ids) for n in notes] == [2, 1]
        assert [r.outcome for r in store.inbound_requests()] == ["accepted", "duplicate", "accepted"]

        async def later() -> Any:  # a lone request is committed at once, by itself
            return await _post(receiver, instance, _cm("d@x"), NOW_MS + 3)

        assert asyncio.run(later()).outcome == "accepted" and store.groups == [3, 1]  # type: ignore[attr-defined]
    finally:
        store.close()


def test_a_failed_group_commit_answers_503_to_each_and_keeps_nothing(tmp_path: Path) -> None:
    config, instance = _config()
    failures: list[str] = []
    store = _counting(tmp_path / "poller.db", fail=True)
    try:
        receiver = Receiver(store, config, on_write_failure=lambda exc, what: failures.append(what))

        async def main() -> list[Any]:
            return await asyncio.gather(*(_post(receiver, instance, _cm(f"{i}@x"), NOW_MS) for i in range(3)))

        answers = asyncio.run(main())
        assert [(a.status, a.outcome) for a in answers] == [(503, "unavailable")] * 3
        assert failures == ["inbound cm"] * 3
        store.fail = False  # type: ignore[attr-defined]
        assert store.notifications() == [] and store.inbound_requests() == []
    finally:
        store.close()


@pytest.mark.parametrize("max_events, expected", [(3, [2, 1]), (1, [1, 1, 1]), (100, [3])])
def test_a_group_is_cut_by_its_number_of_events(tmp_path: Path, max_events: int, expected: list[int]) -> None:
    config, instance = _config()
    store = _counting(tmp_path / "poller.db")
    try:
        receiver = Receiver(store, config)
        receiver._group = GroupCommit(store, max_events=max_events)

        async def main() -> list[Any]:
            return await asyncio.gather(_post(receiver, instance, _cm("a@x", "b@x"), NOW_MS),
                                        _post(receiver, instance, _cm("c@x"), NOW_MS),
                                        _post(receiver, instance, _cm("d@x"), NOW_MS))

        assert [a.outcome for a in asyncio.run(main())] == ["accepted"] * 3
        assert store.groups == expected  # type: ignore[attr-defined]
        assert len(store.notifications()) == 3
    finally:
        store.close()


@pytest.mark.parametrize("max_wait_s, expected", [(60.0, [2]), (0.0, [1, 1])])
def test_a_group_waits_while_each_turn_brings_a_request_but_no_longer_than_max_wait(
        tmp_path: Path, max_wait_s: float, expected: list[int]) -> None:
    config, instance = _config()
    store = _counting(tmp_path / "poller.db")
    try:
        receiver = Receiver(store, config)
        receiver._group = GroupCommit(store, max_wait_s=max_wait_s)

        async def main() -> list[Any]:
            first = asyncio.ensure_future(_post(receiver, instance, _cm("a@x"), NOW_MS))
            await asyncio.sleep(0)  # a turn later, a second request comes
            await asyncio.sleep(0)
            second = asyncio.ensure_future(_post(receiver, instance, _cm("b@x"), NOW_MS))
            return await asyncio.gather(first, second)

        assert [a.outcome for a in asyncio.run(main())] == ["accepted"] * 2
        assert store.groups == expected  # type: ignore[attr-defined]
    finally:
        store.close()
