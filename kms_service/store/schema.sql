-- mock-kms metadata, schema version 6. Key material never lives here: only ids of it.
-- (No semicolons in comments: the file is split into statements at each one.)
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
    -- Imported material (schema version 3, older databases gain these columns in
    -- MetadataStore.initialise): the current material's ExpirationModel, and the earliest
    -- ValidTo of the key's imported material, when the key goes back to PendingImport.
    expiration_model      TEXT,
    valid_to              REAL,
    PRIMARY KEY (account_id, region, key_id)
);

CREATE TABLE IF NOT EXISTS key_materials (
    account_id     TEXT    NOT NULL,
    region         TEXT    NOT NULL,
    key_id         TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    material_id    TEXT    NOT NULL,
    created        REAL    NOT NULL,
    rotation_type  TEXT,
    PRIMARY KEY (account_id, region, key_id, seq),
    FOREIGN KEY (account_id, region, key_id) REFERENCES keys ON DELETE CASCADE
);
-- Not unique since schema step "multi-Region keys": a primary and its replicas share rows.
CREATE INDEX IF NOT EXISTS key_materials_by_material ON key_materials (material_id);

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

-- Wrapping keys handed out by GetParametersForImport (schema version 3): one per call, valid
-- 24 hours by the service clock. The key pair lives in the backend under wrapping_key_id, the
-- import token names that id (docs/key-import.md). Rows outlive deleted keys until they
-- expire, so the backend's pair is always destroyed with its row.
CREATE TABLE IF NOT EXISTS import_wrapping_keys (
    wrapping_key_id     TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL,
    region              TEXT NOT NULL,
    key_id              TEXT NOT NULL,
    backend             TEXT NOT NULL,
    wrapping_algorithm  TEXT NOT NULL,
    wrapping_key_spec   TEXT NOT NULL,
    created             REAL NOT NULL,
    valid_to            REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS import_wrapping_keys_by_expiry ON import_wrapping_keys (valid_to);

-- Imported key material of EXTERNAL keys (schema version 3): one row per KeyMaterialId.
-- check_value identifies the material without revealing it (an AES-GCM tag of nothing, an
-- HMAC of a constant, or a digest of the public key), so a re-import is checked against it
-- even after the material itself was deleted or expired.
CREATE TABLE IF NOT EXISTS imported_materials (
    material_id       TEXT PRIMARY KEY,
    account_id        TEXT    NOT NULL,
    region            TEXT    NOT NULL,
    key_id            TEXT    NOT NULL,
    import_state      TEXT    NOT NULL,
    pending_rotation  INTEGER NOT NULL DEFAULT 0,
    expiration_model  TEXT    NOT NULL,
    valid_to          REAL,
    description       TEXT    NOT NULL DEFAULT '',
    check_value       BLOB    NOT NULL,
    imported          REAL    NOT NULL,
    FOREIGN KEY (account_id, region, key_id) REFERENCES keys ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS imported_materials_by_key ON imported_materials (account_id, region, key_id);

-- >>> schema step "multi-Region keys" (schema version 4) >>>
-- The keys of a multi-Region key: the same key id in several regions of one account, one of
-- them PRIMARY. A multi-Region key with no row here is a primary without replicas. The
-- members share key_materials rows (same material ids, which is why material_id is no longer
-- UNIQUE there) and the rotation columns of keys. pending_window_days: the deletion window of
-- a primary in PendingReplicaDeletion, which begins when its last replica is deleted.
CREATE TABLE IF NOT EXISTS multi_region_members (
    account_id           TEXT    NOT NULL,
    key_id               TEXT    NOT NULL,
    region               TEXT    NOT NULL,
    role                 TEXT    NOT NULL CHECK (role IN ('PRIMARY', 'REPLICA')),
    pending_window_days  INTEGER,
    PRIMARY KEY (account_id, key_id, region),
    FOREIGN KEY (account_id, region, key_id) REFERENCES keys ON DELETE CASCADE
);
-- <<< schema step "multi-Region keys" <<<
-- ===== Access control (schema version 5): grants ====================================
-- One row per grant on a key, removed with the key (ON DELETE CASCADE). The token is an
-- opaque handle a caller may pass in GrantTokens, unique like the grant id.
CREATE TABLE IF NOT EXISTS grants (
    grant_id            TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL,
    region              TEXT NOT NULL,
    key_id              TEXT NOT NULL,
    grant_token         TEXT NOT NULL UNIQUE,
    name                TEXT,
    grantee_principal   TEXT NOT NULL,
    retiring_principal  TEXT,
    issuing_account     TEXT NOT NULL,
    operations          TEXT NOT NULL,
    constraints         TEXT,
    creation_date       REAL NOT NULL,
    FOREIGN KEY (account_id, region, key_id) REFERENCES keys ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS grants_by_key ON grants (account_id, region, key_id, grant_id);
CREATE INDEX IF NOT EXISTS grants_by_retiring_principal ON grants (retiring_principal, grant_id);
-- ===== end of access control ==========================================================
-- === Schema version 6: custom key stores (docs/custom-key-stores.md) =====================
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
-- === end of schema version 6 ==============================================================
