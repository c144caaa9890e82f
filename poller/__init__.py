"""poller: a polling event engine for Cloud Elements style polling configurations."""

__version__ = "0.1.0"
USER_AGENT = f"poller/{__version__}"

__all__ = ["__version__", "USER_AGENT"]
