//! Versioned migrations; `PRAGMA user_version` records how far a database has come.

/// Each entry migrates from version `index` to `index + 1`. Append only; never edit.
pub const MIGRATIONS: &[&str] = &[
    // 1: the core tables.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- value NULL is a tombstone: the fact was seen deleted at event_time.
    CREATE TABLE facts (
        kind        TEXT NOT NULL,
        key         TEXT NOT NULL,
        value       TEXT,
        resource_id TEXT,
        event_time  INTEGER NOT NULL,
        provenance  TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX facts_by_resource_id ON facts (kind, resource_id) WHERE resource_id IS NOT NULL;

    CREATE TABLE baseline_versions (
        version    INTEGER PRIMARY KEY,
        created_at INTEGER NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        note       TEXT NOT NULL
    );
    CREATE TABLE baseline (
        kind         TEXT NOT NULL,
        key          TEXT NOT NULL,
        value        TEXT NOT NULL,
        version      INTEGER NOT NULL REFERENCES baseline_versions (version),
        approved_by  TEXT NOT NULL,
        approved_at  INTEGER NOT NULL,
        from_finding TEXT,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    -- Every change to the baseline, for "who approved what, when".
    CREATE TABLE baseline_history (
        version INTEGER NOT NULL REFERENCES baseline_versions (version),
        kind    TEXT NOT NULL,
        key     TEXT NOT NULL,
        op      TEXT NOT NULL CHECK (op IN ('add', 'replace', 'remove')),
        value   TEXT
    );
    CREATE INDEX baseline_history_by_key ON baseline_history (kind, key);

    CREATE TABLE findings (
        id         TEXT PRIMARY KEY,
        kind       TEXT NOT NULL,
        rule       TEXT NOT NULL,
        severity   TEXT NOT NULL,
        status     TEXT NOT NULL,
        fact_kind  TEXT NOT NULL,
        fact_key   TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        data       TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX findings_by_status ON findings (status);

    -- Phases of Azure operations waiting for their partner (Start waits for Success and
    -- the reverse), plus 'applied' / 'failed' markers that make replays and duplicates inert.
    CREATE TABLE pending_ops (
        operation_id TEXT NOT NULL,
        phase        TEXT NOT NULL,
        candidate    TEXT,
        provenance   TEXT NOT NULL,
        event_time   INTEGER NOT NULL,
        PRIMARY KEY (operation_id, phase)
    ) WITHOUT ROWID;
    CREATE INDEX pending_ops_by_time ON pending_ops (event_time);

    CREATE TABLE outbox (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        idempotency_key TEXT NOT NULL,
        sink            TEXT NOT NULL,
        finding_id      TEXT NOT NULL,
        transition      TEXT NOT NULL,
        severity        TEXT NOT NULL,
        payload         TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        UNIQUE (idempotency_key, sink)
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

    CREATE TABLE checkpoints (
        source      TEXT PRIMARY KEY,
        position    INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: phases expire by ingest time (a record dated 2099 must not expire its neighbours);
    // one phase may be kept per event time, so records without a correlation id pair each
    // Success with the Start just before it; deletes by resource id leave tombstones.
    r#"
    CREATE TABLE pending_ops_v2 (
        operation_id TEXT NOT NULL,
        phase        TEXT NOT NULL,
        event_time   INTEGER NOT NULL,
        candidate    TEXT,
        provenance   TEXT NOT NULL,
        ingested_at  INTEGER NOT NULL,
        PRIMARY KEY (operation_id, phase, event_time)
    ) WITHOUT ROWID;
    INSERT INTO pending_ops_v2 (operation_id, phase, event_time, candidate, provenance, ingested_at)
        SELECT operation_id, phase, event_time, candidate, provenance, CAST(strftime('%s', 'now') AS INTEGER) * 1000000000
        FROM pending_ops;
    DROP TABLE pending_ops;
    ALTER TABLE pending_ops_v2 RENAME TO pending_ops;
    CREATE INDEX pending_ops_by_ingest ON pending_ops (ingested_at);

    -- A delete that names a resource id no fact carries yet (it arrived before its write):
    -- remembered so the older write, when it comes, loses (last writer wins for deletes too).
    CREATE TABLE tombstones (
        kind        TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        event_time  INTEGER NOT NULL,
        provenance  TEXT NOT NULL,
        ingested_at INTEGER NOT NULL,
        PRIMARY KEY (kind, resource_id)
    ) WITHOUT ROWID;
    "#,
    // 3: lookups the rules catalogue joins on (issue 10): one expression index per value
    // field a rule looks facts up by, and findings by rule for re-judging. Not partial: with
    // a partial index SQLite re-prepares the statement whenever a bound value changes.
    r#"
    CREATE INDEX facts_by_principal ON facts (kind, json_extract(value, '$.principal_id'));
    CREATE INDEX facts_by_client ON facts (kind, json_extract(value, '$.client_id'));
    CREATE INDEX facts_by_kubelet ON facts (kind, json_extract(value, '$.kubelet_identity.object_id'));
    CREATE INDEX facts_by_identity_principal ON facts (kind, json_extract(value, '$.identity_principal_id'));
    CREATE INDEX facts_by_issuer ON facts (kind, json_extract(value, '$.oidc_issuer_url'));
    CREATE INDEX facts_by_wi_client ON facts (kind, json_extract(value, '$.workload_identity_client_id'));
    CREATE INDEX facts_by_subject ON facts (kind, json_extract(value, '$.subject'));
    CREATE INDEX facts_by_role_ref ON facts (kind, json_extract(value, '$.role_ref.name'));
    CREATE INDEX findings_by_rule ON findings (rule, status);
    "#,
    // 4: Event Hubs partition ownership (the SDK's load balancing, ready for several
    // replicas). Checkpoints are rows of `checkpoints` named `eventhubs:NS/HUB/CG/PARTITION`,
    // written by the store-writer with the effects of the events up to them.
    r#"
    CREATE TABLE eventhubs_ownership (
        namespace      TEXT NOT NULL,
        eventhub       TEXT NOT NULL,
        consumer_group TEXT NOT NULL,
        partition_id   TEXT NOT NULL,
        owner_id       TEXT,
        etag           TEXT NOT NULL,
        modified_at    INTEGER NOT NULL,
        PRIMARY KEY (namespace, eventhub, consumer_group, partition_id)
    ) WITHOUT ROWID;
    "#,
    // 5: lookups that ran as scans: expiry of phases and markers (each has its own TTL, so
    // the phase leads the index) and of tombstones on every batch, the policy findings of one
    // subject, and facts by resource id.
    r#"
    DROP INDEX pending_ops_by_ingest;
    CREATE INDEX pending_ops_by_phase_ingest ON pending_ops (phase, ingested_at);
    CREATE INDEX tombstones_by_ingest ON tombstones (ingested_at);
    CREATE INDEX findings_by_subject ON findings (fact_kind, fact_key, kind);
    -- Deletes by resource id: the partial index of migration 1 is never chosen for a bound
    -- value, so each one scanned every fact of its kind.
    DROP INDEX facts_by_resource_id;
    CREATE INDEX facts_by_resource ON facts (kind, resource_id, event_time);
    "#,
    // 6: the notifier's queries at a backlog of 100 000 alerts: a lease walks a sink's
    // pending rows in order and checks each candidate's older rows by finding, both indexed
    // (it grouped every pending row by finding on every lease); findings counted by status
    // from a covering index.
    r#"
    CREATE INDEX outbox_pending ON outbox (sink, seq) WHERE state = 'pending';
    CREATE INDEX outbox_pending_by_finding ON outbox (sink, finding_id, seq) WHERE state = 'pending';
    DROP INDEX findings_by_status;
    CREATE INDEX findings_by_status ON findings (status, kind, severity);
    "#,
    // 7: Kubernetes attribution (issue 17): audit records waiting for the watch's change
    // and changes waiting for their audit record, both expiring by ingest time; alerts held
    // for their actor (`held`: the notifier leases them only when the wait is over).
    r#"
    CREATE TABLE audit_writes (
        audit_id         TEXT PRIMARY KEY,
        kind             TEXT NOT NULL,
        fact_key         TEXT NOT NULL,
        is_delete        INTEGER NOT NULL,
        resource_version TEXT,
        event_time       INTEGER NOT NULL,
        provenance       TEXT NOT NULL,
        matched          INTEGER NOT NULL DEFAULT 0,
        ingested_at      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX audit_writes_by_key ON audit_writes (kind, fact_key, matched);
    CREATE INDEX audit_writes_by_ingest ON audit_writes (ingested_at);
    CREATE TABLE k8s_changes (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        kind             TEXT NOT NULL,
        fact_key         TEXT NOT NULL,
        is_delete        INTEGER NOT NULL,
        resource_version TEXT,
        event_time       INTEGER NOT NULL,
        findings         TEXT NOT NULL,
        audit_id         TEXT,
        ingested_at      INTEGER NOT NULL
    );
    CREATE INDEX k8s_changes_by_key ON k8s_changes (kind, fact_key);
    CREATE INDEX k8s_changes_by_ingest ON k8s_changes (ingested_at);
    ALTER TABLE outbox ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
    "#,
];
