"""poller.deliver.engine: per-endpoint queues; endpoints independent of each other; attempts
recorded in batches (real HTTP to loopback receivers, a real state file, no poll: the
notifications are written straight into the outbox)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path


from poller.config import Config, load_config_text
from poller.deliver.client import delivery_session
from poller.deliver.engine import DeliveryEngine, deliver_due
from state import Notification, Store, open_store
from tests.receiver import Receiver, elements_signature

UTC = timezone.utc


def config(receivers: dict[str, Receiver], concurrency: int = 4) -> Config:
    return load_config_text(json.dumps({"engine": {"delivery": {"concurrencyPerEndpoint": concurrency}}, "instances": [
        {"id": name, "element": {"key": "crm"}, "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": r.url("/hook"),
            "event.poller.configuration": {"c": {"url": "http://127.0.0.1:9/c", "idField": "id"}}}}
        for name, r in receivers.items()]}), "c.json", {}).config


def write(store: Store, instance: str, url: str, count: int, *, resources: int = 1) -> list[str]:
    ids = []
    for r in range(resources):
        key = f"{instance}/r{r}"
        rows = [Notification(f"{instance}-r{r}-{i}", key, instance, f"r{r}", url, 1, b'{"n": %d}' % i, (f"e{i}",), i)
                for i in range(count)]
        store.record_page(key, instance, f"r{r}", rows, [])
        ids += [n.id for n in rows]
    return ids


def test_a_slow_endpoint_never_paces_another(tmp_path: Path, make_receiver: Callable[..., Receiver]) -> None:
    """One callback answering after 1 s, another at once: before, the fast one got one
    notification per second, in step with the slow one."""
    slow, fast = make_receiver(), make_receiver()
    slow.respond(None, delay_s=1.0, times=None)
    conf = config({"slow": slow, "fast": fast})
    with open_store(tmp_path / "p.db") as store:
        write(store, "slow", slow.url("/hook"), 3)
        write(store, "fast", fast.url("/hook"), 30, resources=3)

        async def main() -> None:
            async with delivery_session() as client:
                report = await deliver_due(client, store, conf, lambda: datetime.now(UTC))
                assert report.ok and len(report.results) == 93

        asyncio.run(main())
    slow_arrivals = sorted(r.at for r in slow.delivered())
    fast_arrivals = sorted(r.at for r in fast.delivered())
    assert len(slow_arrivals) == 3 and len(fast_arrivals) == 90
    # every fast one arrived before the slow endpoint's second request (which waits for the first
    # answer, a second later): the fast endpoint was not paced by the slow one
    assert fast_arrivals[-1] < slow_arrivals[1]


def test_each_resource_in_order_and_each_endpoint_at_most_its_concurrency(
        tmp_path: Path, make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver()
    receiver.respond(None, delay_s=0.02, times=None)
    conf = config({"crm": receiver}, concurrency=3)
    with open_store(tmp_path / "p.db") as store:
        ids = write(store, "crm", receiver.url("/hook"), 10, resources=6)

        async def main() -> None:
            async with delivery_session() as client:
                report = await deliver_due(client, store, conf, lambda: datetime.now(UTC))
                assert report.ok

        asyncio.run(main())
        assert {e.status for e in store.notifications()} == {"delivered"}
    got = [r.notification_id for r in receiver.delivered()]
    assert sorted(got) == sorted(ids)
    for r in range(6):
        mine = [i for i in got if i.startswith(f"crm-r{r}-")]
        assert mine == [f"crm-r{r}-{i}" for i in range(10)]  # detection order, per resource
    # never more than 3 at once: each request's arrival and answer times overlap at most 3 deep
    spans = sorted((r.at, r.at + 0.02) for r in receiver.delivered())
    assert max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans) <= 3


def test_the_daemon_engine_records_many_attempts_per_transaction(tmp_path: Path,
                                                                 make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver()
    conf = config({"crm": receiver}, concurrency=8)
    with open_store(tmp_path / "p.db") as store:
        write(store, "crm", receiver.url("/hook"), 20, resources=10)
        commits = 0
        original = store.record_attempts

        def counting(results: list) -> None:
            nonlocal commits
            commits += 1
            original(results)

        store.record_attempts = counting  # type: ignore[method-assign]

        async def main() -> None:
            stop = asyncio.Event()
            async with delivery_session() as client:
                engine = DeliveryEngine(client, store, conf, lambda: datetime.now(UTC))
                task = asyncio.create_task(engine.run(stop))
                while store.outbox_counts()["pending"]:
                    await asyncio.sleep(0.02)
                stop.set()
                await task

        asyncio.run(main())
        assert store.outbox_counts() == {"pending": 0, "delivered": 200, "dead": 0}
    assert len(receiver.delivered()) == 200
    assert commits < 180, commits  # fewer transactions than attempts (those ended by the same loop turn go together)


def test_notifications_reuse_the_connection(tmp_path: Path, make_receiver: Callable[..., Receiver]) -> None:
    """The receiver's answer is read to its end, so that its connection goes back to the pool: a
    new connection per notification cost half of delivery's time (bench/deliver.py)."""
    receiver = make_receiver()
    conf = config({"crm": receiver}, concurrency=1)
    with open_store(tmp_path / "p.db") as store:
        write(store, "crm", receiver.url("/hook"), 20, resources=1)

        async def main() -> None:
            async with delivery_session() as client:
                assert (await deliver_due(client, store, conf, lambda: datetime.now(UTC))).ok

        asyncio.run(main())
    assert len(receiver.delivered()) == 20
    assert receiver.connections_opened == 1



def test_the_outbox_is_read_a_part_at_a_time_in_order_and_retargeted_only_when_stale(
        tmp_path: Path, make_receiver: Callable[..., Receiver], monkeypatch) -> None:  # noqa: ANN001
    from poller.deliver import engine as engine_module

    monkeypatch.setattr(engine_module, "LOAD_PART", 7)
    receiver = make_receiver()
    conf = config({"crm": receiver}, concurrency=4)
    with open_store(tmp_path / "p.db") as store:
        ids = write(store, "crm", "http://127.0.0.1:9/old", 12, resources=4)  # an old callback URL
        reads: list[int] = []
        retargets = 0
        pending, retarget = store.pending, store.retarget_callbacks

        def counting_pending(**kwargs: int) -> list:
            rows = pending(**kwargs)
            reads.append(len(rows))
            return rows

        def counting_retarget(urls: dict[str, str]) -> int:
            nonlocal retargets
            retargets += 1
            return retarget(urls)

        store.pending = counting_pending  # type: ignore[method-assign]
        store.retarget_callbacks = counting_retarget  # type: ignore[method-assign]

        async def main() -> None:
            async with delivery_session() as client:
                engine = DeliveryEngine(client, store, conf, lambda: datetime.now(UTC))
                await engine._reload(retarget=False)  # a periodic resync: the URLs stay as written
                assert retargets == 0 and reads == [7] * 6 + [6]  # 48 rows
                report = await engine.run_once()  # a configuration (re)loaded: they follow it
                assert report.ok and retargets == 1

        asyncio.run(main())
        assert store.outbox_counts() == {"pending": 0, "delivered": 48, "dead": 0}
    got = [r.notification_id for r in receiver.delivered()]
    assert sorted(got) == sorted(ids)
    for r in range(4):
        assert [i for i in got if i.startswith(f"crm-r{r}-")] == [f"crm-r{r}-{i}" for i in range(12)]


def test_pending_notifications_are_read_through_their_own_index(tmp_path: Path) -> None:
    with open_store(tmp_path / "p.db") as store:
        plan = store.db.execute(
            "EXPLAIN QUERY PLAN SELECT rowid, id FROM outbox WHERE status = 'pending' AND rowid > ? "
            "ORDER BY rowid LIMIT ?", [0, 10]).fetchall()
    # (through outbox_status_next, each part read and sorted every pending row again)
    assert any("outbox_pending_rowid" in str(row) for row in plan) and not any("TEMP B-TREE" in str(r) for r in plan)


def test_notifications_of_an_instance_a_reload_removed_are_still_delivered_and_signed(
        tmp_path: Path, make_receiver: Callable[..., Receiver]) -> None:
    """DESIGN §9: removed ones stop being polled; notifications already in the outbox are still
    delivered. They waited forever ('delivery.instance_missing') once their instance was gone."""
    receiver = make_receiver()
    receiver.respond(503, times=1)  # the first attempt fails: the notification is pending at the reload

    def signed(names: list[str]) -> Config:
        return load_config_text(json.dumps({"engine": {"delivery": {"retrySchedule": [0.2]}}, "instances": [
            {"id": name, "element": {"key": "crm"}, "configuration": {
                "event.notification.enabled": True, "event.notification.callback.url": receiver.url("/hook"),
                "event.notification.signature.key": f"{name}-key-0123456789",
                "event.poller.configuration": {"c": {"url": "http://127.0.0.1:9/c", "idField": "id"}}}}
            for name in names]}), "c.json", {}).config

    with open_store(tmp_path / "p.db") as store:
        [nid] = write(store, "gone", receiver.url("/hook"), 1)

        async def main() -> None:
            stop = asyncio.Event()
            async with delivery_session() as client:
                engine = DeliveryEngine(client, store, signed(["gone", "kept"]), lambda: datetime.now(UTC))
                task = asyncio.create_task(engine.run(stop))
                while not receiver.snapshot():
                    await asyncio.sleep(0.01)
                engine.configure(signed(["kept"]))  # the reload: "gone" left the configuration
                engine.wake()
                for _ in range(500):
                    if store.outbox_counts()["pending"] == 0:
                        break
                    await asyncio.sleep(0.01)
                stop.set()
                await task

        asyncio.run(main())
        assert [e.status for e in store.notifications()] == ["delivered"]
    assert [r.answer for r in receiver.snapshot()] == [503, 200]
    [sent] = receiver.delivered()
    assert sent.headers["elements-webhook-id"] == nid
    # signed with the removed instance's key, as before
    assert sent.headers["elements-webhook-signature"] == elements_signature("gone-key-0123456789", sent.body)
