"""Key states, as AWS KMS names them in ``KeyMetadata.KeyState``.

A :class:`enum.StrEnum`, so a state read from the store or written to a response is the same
string AWS uses, and a misspelt state is a name error instead of a silent mismatch.
The states and their meaning: docs/aws-behaviours.md, "Key states".
"""

from __future__ import annotations

from enum import StrEnum


class KeyState(StrEnum):
    """Every ``KeyState`` value of AWS KMS's ``KeyMetadata``."""

    CREATING = "Creating"
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_REPLICA_DELETION = "PendingReplicaDeletion"
    PENDING_IMPORT = "PendingImport"
    UNAVAILABLE = "Unavailable"
    UPDATING = "Updating"
