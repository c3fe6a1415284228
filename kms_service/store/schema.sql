-- mock-kms metadata, schema version 2. Key material never lives here: only ids of it.
CREATE TABLE IF NOT EXISTS keys (
    account_id            TEXT    NOT NULL,
    region                TEXT    NOT NULL,
    key_id                TEXT    NOT NULL,
    description           TEXT    NOT NULL DEFAULT '',
    key_usage             TEXT    NOT NULL,
    key_spec              TEXT    NOT NULL,
    origin                TEXT    NOT NULL,
    key_manager           TEXT    NOT NULL,
    state                 TEXT    NOT NULL,
    creation_date         REAL    NOT NULL,
    deletion_date         REAL,
    multi_region          INTEGER NOT NULL DEFAULT 0,
    backend               TEXT    NOT NULL,
    rotation_enabled      INTEGER NOT NULL DEFAULT 0,
    rotation_period_days  INTEGER,
    next_rotation_date    REAL,
    on_demand_rotations   INTEGER NOT NULL DEFAULT 0,
    policy                TEXT    NOT NULL,
    PRIMARY KEY (account_id, region, key_id)
);

CREATE TABLE IF NOT EXISTS key_materials (
    account_id     TEXT    NOT NULL,
    region         TEXT    NOT NULL,
    key_id         TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    material_id    TEXT    NOT NULL UNIQUE,
    created        REAL    NOT NULL,
    rotation_type  TEXT,
    PRIMARY KEY (account_id, region, key_id, seq),
    FOREIGN KEY (account_id, region, key_id) REFERENCES keys ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS aliases (
    account_id         TEXT NOT NULL,
    region             TEXT NOT NULL,
    alias_name         TEXT NOT NULL,
    target_key_id      TEXT NOT NULL,
    creation_date      REAL NOT NULL,
    last_updated_date  REAL NOT NULL,
    PRIMARY KEY (account_id, region, alias_name)
);
CREATE INDEX IF NOT EXISTS aliases_by_target ON aliases (account_id, region, target_key_id);

CREATE TABLE IF NOT EXISTS tags (
    account_id  TEXT NOT NULL,
    region      TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    tag_key     TEXT NOT NULL,
    tag_value   TEXT NOT NULL,
    PRIMARY KEY (account_id, region, key_id, tag_key),
    FOREIGN KEY (account_id, region, key_id) REFERENCES keys ON DELETE CASCADE
);

-- Material destroyed in the database but perhaps not yet in the backend (a crash between
-- the commit and the backend call): swept at startup so nothing is left behind.
CREATE TABLE IF NOT EXISTS pending_destruction (
    material_id  TEXT PRIMARY KEY,
    backend      TEXT NOT NULL
);

-- Service-wide settings every worker reads (schema version 2): the movable clock's offset,
-- the fault-injection rules. Read through a short cache, never per operation.
CREATE TABLE IF NOT EXISTS service_settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- === Schema version 3: custom key stores (docs/custom-key-stores.md) =====================
-- One row per AWS CloudHSM-style key store. The default store (cks-mock-kms-pkcs11, the
-- PKCS11_* token) has account_id = region = '' and is shown in every account and region.
-- The KeyStorePassword is kept only wrapped under the root key (AES-256-GCM, associated data
-- "mock-kms:custom-key-store-password:<store id>"), never in clear. Keys name their store in
-- keys.backend ('pkcs11' for the default store, the store id for the others).
CREATE TABLE IF NOT EXISTS custom_key_stores (
    store_id            TEXT    PRIMARY KEY,
    account_id          TEXT    NOT NULL,
    region              TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    store_type          TEXT    NOT NULL,
    cluster_id          TEXT    NOT NULL,
    trust_anchor        TEXT    NOT NULL,
    password_nonce      BLOB,
    password_wrapped    BLOB,
    connection_state    TEXT    NOT NULL,
    connection_error    TEXT,
    connection_epoch    INTEGER NOT NULL DEFAULT 0,
    creation_date       REAL    NOT NULL,
    UNIQUE (account_id, region, name)
);
-- === end of schema version 3 ==============================================================
