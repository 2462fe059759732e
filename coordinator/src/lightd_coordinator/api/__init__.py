"""The HTTP API: dependencies in ``deps``, one router per resource in ``routes``."""
