"""The console's pages, each module registering its routes on the blueprint."""

from kms_service.console.blueprint import console
from kms_service.console.pages import developer, keys, requests, s3, session

__all__ = ["console", "developer", "keys", "requests", "s3", "session"]
