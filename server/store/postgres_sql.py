"""The PostgreSQL store's schema (versioned in ``syncline_migrations``) and its fixed statements."""

from __future__ import annotations

import re

import asyncpg

SCHEMA_VERSION = 5
"""The schema this module writes: the largest version in ``syncline_migrations``."""

# What a failing database, network or driver raises: all of it is "unavailable". The
# driver raises InternalClientError on a session the server ended while it was idle.
DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError,
)

SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

# Index i migrates a schema from version i to i + 1, inside one transaction. Plain
# CREATE TABLE: a schema holding foreign tables of these names is refused, not adopted.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE updates (seq bigint PRIMARY KEY, doc text NOT NULL, blob bytea NOT NULL)",
        "CREATE INDEX updates_doc_seq ON updates (doc, seq)",
        "CREATE TABLE snapshots (doc text PRIMARY KEY, seq bigint NOT NULL, blob bytea NOT NULL)",
        "CREATE TABLE meta (key text PRIMARY KEY, value bigint NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('last_seq', 0), ('feed_floor', 0), ('probe', 0)",
        (
            "CREATE TABLE changes (seq bigint PRIMARY KEY, doc text NOT NULL, tenant text NOT NULL,"
            " at double precision NOT NULL, action text)"
        ),
        "CREATE INDEX changes_tenant_seq ON changes (tenant, seq)",
        (
            "CREATE TABLE responses (tenant text NOT NULL, key text NOT NULL, fingerprint text NOT NULL,"
            " record bytea NOT NULL, created_at double precision NOT NULL, PRIMARY KEY (tenant, key))"
        ),
        (
            "CREATE TABLE prices (tenant text NOT NULL, product text NOT NULL, unit_price bigint NOT NULL,"
            " currency text NOT NULL, PRIMARY KEY (tenant, product))"
        ),
    ),
    (
        # Idempotency keys claimed by requests still running, on any node (see claim()).
        (
            "CREATE TABLE claims (tenant text NOT NULL, key text NOT NULL, fingerprint text NOT NULL,"
            " holder text NOT NULL, created_at double precision NOT NULL, PRIMARY KEY (tenant, key))"
        ),
        "CREATE TABLE epochs (first_seq bigint PRIMARY KEY, epoch text NOT NULL)",
    ),
    (
        "CREATE TABLE client_owners (doc text NOT NULL, client bigint NOT NULL, owner text NOT NULL,"
        " PRIMARY KEY (doc, client))",
    ),
    (
        # Seqs come from a sequence, not from the meta.last_seq row lock (see the module doc of
        # postgres.py). MINVALUE 0 so that setval(..., 0, true) makes the first nextval 1.
        "CREATE SEQUENCE syncline_seq AS bigint MINVALUE 0 START WITH 0",
        "SELECT setval('syncline_seq', (SELECT value FROM meta WHERE key = 'last_seq'), true)",
        # A node still on version 3 would take seqs from this row: without it, it fails instead.
        "DELETE FROM meta WHERE key = 'last_seq'",
        # One call per append transaction: the documents' locks (ordered by key, so two batches
        # never wait on each other in a cycle), then the in-flight marker, then the seqs.
        """CREATE FUNCTION syncline_take_seqs(docs text[], doc_tag integer, mark_tag integer)
        RETURNS bigint[] LANGUAGE plpgsql AS $$
        DECLARE
            k integer;
            low bigint;
        BEGIN
            FOR k IN SELECT DISTINCT hashtext(d) FROM unnest(docs) AS d ORDER BY 1 LOOP
                PERFORM pg_advisory_xact_lock(doc_tag, k);
            END LOOP;
            low := (SELECT last_value FROM syncline_seq);
            -- The marker's key holds the low 32 bits of low; the reader restores the rest.
            PERFORM pg_advisory_xact_lock_shared(
                mark_tag, ((low & 4294967295) - CASE WHEN (low & 4294967295) >= 2147483648
                                                      THEN 4294967296 ELSE 0 END)::integer);
            RETURN ARRAY(SELECT nextval('syncline_seq') FROM generate_series(1, cardinality(docs)) ORDER BY 1);
        END $$""",
        # The feed's watermark: no seq at or below it can still commit (see changes_since).
        """CREATE FUNCTION syncline_feed_watermark(mark_tag integer)
        RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE
            cur bigint;
            low bigint;
        BEGIN
            cur := (SELECT last_value FROM syncline_seq);
            SELECT min(cur - ((cur - l.objid::bigint) % 4294967296 + 4294967296) % 4294967296) INTO low
            FROM pg_locks AS l
            WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = (mark_tag::bigint & 4294967295)::oid
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND ((cur - l.objid::bigint) % 4294967296 + 4294967296) % 4294967296 < 2147483648;
            RETURN least(cur, coalesce(low, cur));
        END $$""",
    ),
    (
        "CREATE TABLE doc_access (doc text PRIMARY KEY, last_accessed_at double precision NOT NULL,"
        " guest boolean NOT NULL DEFAULT false)",
        "CREATE INDEX doc_access_guest_idle ON doc_access (guest, last_accessed_at)",
    ),
)
assert len(MIGRATIONS) == SCHEMA_VERSION

# The seqs of one append transaction, one per row, after its documents' locks and its
# in-flight marker (see the module doc of postgres.py); $2 and $3 are the store's lock tags.
TAKE_SEQS = "SELECT syncline_take_seqs($1::text[], $2, $3)"
FEED_WATERMARK = "SELECT syncline_feed_watermark($1)"
LAST_SEQ = "SELECT last_value FROM syncline_seq"
# The log rows and their change rows, in one statement; ``at`` is the database's clock,
# one clock for every node.
INSERT_BATCH = (
    "WITH u AS (INSERT INTO updates (seq, doc, blob)"
    " SELECT t.seq, t.doc, t.blob FROM unnest($1::bigint[], $2::text[], $3::bytea[]) AS t(seq, doc, blob))"
    " INSERT INTO changes (seq, doc, tenant, at, action)"
    " SELECT t.seq, t.doc, t.tenant, extract(epoch FROM clock_timestamp())::double precision, t.action"
    " FROM unnest($1::bigint[], $2::text[], $4::text[], $5::text[]) AS t(seq, doc, tenant, action)"
)
INSERT_RESPONSE = (
    "INSERT INTO responses (tenant, key, fingerprint, record, created_at) VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (tenant, key) DO NOTHING"
)
SELECT_RESPONSE = (
    "SELECT tenant, key, fingerprint, record, created_at FROM responses WHERE tenant = $1 AND key = $2"
)
# Takes the key, or takes over a claim older than $5 seconds (by the database's clock, one for
# every node); returns a row only when this caller holds the claim now.
TAKE_CLAIM = (
    "INSERT INTO claims (tenant, key, fingerprint, holder, created_at)"
    " VALUES ($1, $2, $3, $4, extract(epoch FROM clock_timestamp()))"
    " ON CONFLICT (tenant, key) DO UPDATE"
    " SET fingerprint = excluded.fingerprint, holder = excluded.holder, created_at = excluded.created_at"
    " WHERE claims.created_at < excluded.created_at - $5"
    " RETURNING holder"
)
# Snapshot (kind 0) then the log rows after it (kind 1): one statement, one read snapshot.
LOAD = (
    "SELECT 0 AS kind, seq, blob FROM snapshots WHERE doc = $1"
    " UNION ALL"
    " SELECT 1, seq, blob FROM updates WHERE doc = $1"
    " AND seq > coalesce((SELECT seq FROM snapshots WHERE doc = $1), 0)"
    " ORDER BY 1, 2"
)
# A snapshot past the point (kind 0: the rows after it were folded), then the log rows after it.
UPDATES_AFTER = (
    "SELECT 0 AS kind, seq, NULL::bytea AS blob FROM snapshots WHERE doc = $1 AND seq > $2"
    " UNION ALL"
    " (SELECT 1, seq, blob FROM updates WHERE doc = $1 AND seq > $2 ORDER BY seq LIMIT $3)"
    " ORDER BY 1, 2"
)
# Writes the snapshot only over an older one; the row lock serializes compactions of ``doc``.
PUT_SNAPSHOT = (
    "INSERT INTO snapshots (doc, seq, blob) VALUES ($1, $2, $3)"
    " ON CONFLICT (doc) DO UPDATE SET seq = excluded.seq, blob = excluded.blob"
    " WHERE snapshots.seq < excluded.seq RETURNING seq"
)
