"""Benchmark: load a valid configuration with 10,000 resources and print how long it takes.

    .venv/bin/python bench/config_load.py [--resources N] [--instances M]

Not a test: it asserts nothing about time. The file is written to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poller.config import load_config  # noqa: E402

FORMATS = ("yyyy-MM-dd'T'HH:mm:ssXXX", "yyyy-MM-dd HH:mm:ss", "milliseconds", "EEE, dd MMM yyyy HH:mm:ss Z",
           "MM/dd/yyyy HH:mm:ss")
URLS = ("/r{i}?since=${{gmtDate:yyyy-MM-dd'T'HH:mm:ssXXX}}",
        "/r{i}?where=updated>'${{dateTimeZone:-8:00:yyyy-MM-dd HH:mm:ss}}'",
        "/r{i}?from=${{epoch:s}}&n=${{pageSize}}",
        "/r{i}")


def make_config(resources: int, instances: int) -> dict:
    per_instance = -(-resources // instances)
    out = []
    for n in range(instances):
        conf = {}
        for i in range(n * per_instance, min(resources, (n + 1) * per_instance)):
            conf[f"resource-{i}"] = {
                "url": URLS[i % len(URLS)].format(i=i),
                "idField": "data.id",
                "pageSize": 100,
                "datesConfiguration": {
                    "updatedDateField": "updated",
                    "updatedDateFormat": FORMATS[i % len(FORMATS)],
                    "updatedDateTimezone": ("GMT", "PST", "America/Denver", "+05:30")[i % 4],
                    "createdDateField": "created",
                    "createdDateFormat": FORMATS[(i + 1) % len(FORMATS)],
                },
                "pagination": {"type": "page", "param": "page"},
            }
        out.append({
            "id": f"instance-{n}",
            "api": {"baseUrl": "https://api.example.com/v1", "headers": {"Authorization": "${env:TOKEN}"}},
            "configuration": {
                "event.notification.enabled": "true",
                "event.notification.callback.url": "https://hooks.example.com/poller",
                "event.poller.refresh_interval": "15",
                "event.poller.configuration": conf,
            },
        })
    return {"engine": {"serverTimeZone": "UTC"}, "instances": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(make_config(args.resources, args.instances), indent=1), encoding="utf-8")
        size = path.stat().st_size
        start = time.perf_counter()
        result = load_config(path, {"TOKEN": "secret"})
        elapsed = time.perf_counter() - start
    loaded = sum(1 for _ in result.config.resources())
    print(f"loaded {loaded} resources in {len(result.config.instances)} instances from {size / 1e6:.1f} MB "
          f"in {elapsed:.2f} s ({elapsed / max(loaded, 1) * 1e6:.0f} us per resource); "
          f"{len(result.warnings)} warnings")


if __name__ == "__main__":
    main()
