"""poller: a polling event engine for Cloud Elements style polling configurations."""

__version__ = "0.1.0"

__all__ = ["__version__"]
