"""The README's two commands are what CI runs, and every CLI command is documented."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = text.split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", head, flags=re.S)


def test_readme_has_setup_and_test_commands_near_the_top() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    setup, tests = commands
    assert setup.startswith("python3 -m venv .venv && ")
    assert "pytest" in tests


def test_ci_runs_exactly_the_readme_commands_in_order() -> None:
    setup, tests = readme_commands()
    ci_lines = [
        line
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert ci_lines == [setup, tests]


def test_readme_python_examples_run() -> None:
    """The snippets users copy from the README work as shown."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.+?)\n```", text, flags=re.S)
    assert blocks
    names: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), names)  # noqa: S102 - our own documentation
    # the receiver snippets accept what poller sends, and reject a tampered body
    import time

    from poller.deliver.signing import headers

    body = b'{"id":"n1"}'
    sent = headers("n1", body, "my key", int(time.time()), user_agent="test")
    check_ce, check_sw = names["cloud_elements_signature_ok"], names["standard_webhooks_ok"]
    assert check_ce("MySecretEventSignatureKey", b"<INSERT_EVENT_NOTIFICATION_RESPONSE_BODY>",
                    "sha256=jHdbRx5EZAsOfTwAPJOGkNUzQMVVdu5VJlxcsk+G6jQ=")
    assert check_ce("my key", body, sent["Elements-Webhook-Signature"])
    assert check_sw("my key", body, sent) and not check_sw("my key", body + b" ", sent)


def test_every_command_has_help_and_is_in_the_readme() -> None:
    from poller.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, sub in commands.choices.items():
        assert sub.description, f"poller {name} has no help text"
        assert f"poller {name}" in readme, f"poller {name} is not in the README"
