"""Secrets kept in local files: the root key and the 0600 write-once files that hold it."""
