"""The process lifetime of ``poller run``: scheduling, signals, systemd notify and watchdog,
metrics and the HTTP listener. Nothing else in poller imports this package (only the CLI does).
"""
