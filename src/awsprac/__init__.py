"""awsprac: a production-shaped AWS environment, built and kept right by one idempotent command."""

__version__ = "0.1.0"
