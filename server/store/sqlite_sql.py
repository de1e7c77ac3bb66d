"""The SQLite store's schema (versioned by ``PRAGMA user_version``) and its fixed statements."""

from __future__ import annotations

SCHEMA_VERSION = 5
"""The schema this module writes; ``PRAGMA user_version`` of a current file."""

SYNCHRONOUS_MODES = ("FULL", "EXTRA", "NORMAL")
WAL_SIZE_LIMIT = 64 * 1024 * 1024

# Index i migrates a file from user_version i to i + 1, inside one transaction.
# Plain CREATE TABLE (no IF NOT EXISTS): a foreign SQLite file with tables of the
# same names is refused instead of being silently adopted.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        (
            "CREATE TABLE updates ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " doc TEXT NOT NULL,"
            " blob BLOB NOT NULL)"
        ),
        "CREATE INDEX updates_doc_seq ON updates (doc, seq)",
        (
            "CREATE TABLE snapshots ("
            " doc TEXT PRIMARY KEY,"
            " seq INTEGER NOT NULL,"
            " blob BLOB NOT NULL)"
        ),
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    ),
    (
        (
            "CREATE TABLE changes ("
            " seq INTEGER PRIMARY KEY,"
            " doc TEXT NOT NULL,"
            " tenant TEXT NOT NULL,"
            " at REAL NOT NULL,"
            " action TEXT)"
        ),
        "CREATE INDEX changes_tenant_seq ON changes (tenant, seq)",
        (
            "CREATE TABLE responses ("
            " tenant TEXT NOT NULL,"
            " key TEXT NOT NULL,"
            " fingerprint TEXT NOT NULL,"
            " record BLOB NOT NULL,"
            " created_at REAL NOT NULL,"
            " PRIMARY KEY (tenant, key)) WITHOUT ROWID"
        ),
        (
            "CREATE TABLE prices ("
            " tenant TEXT NOT NULL,"
            " product TEXT NOT NULL,"
            " unit_price INTEGER NOT NULL,"
            " currency TEXT NOT NULL,"
            " PRIMARY KEY (tenant, product)) WITHOUT ROWID"
        ),
        # Updates stored before the feed existed have no change rows: resuming below them is a gap.
        (
            "INSERT INTO meta (key, value) SELECT 'feed_floor', max("
            " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0),"
            " coalesce((SELECT max(seq) FROM updates), 0))"
        ),
    ),
    (
        "CREATE TABLE epochs (first_seq INTEGER PRIMARY KEY, epoch TEXT NOT NULL)",
    ),
    (
        (
            "CREATE TABLE client_owners ("
            " doc TEXT NOT NULL,"
            " client INTEGER NOT NULL,"
            " owner TEXT NOT NULL,"
            " PRIMARY KEY (doc, client)) WITHOUT ROWID"
        ),
    ),
    (
        (
            "CREATE TABLE doc_access ("
            " doc TEXT PRIMARY KEY,"
            " last_accessed_at REAL NOT NULL,"
            " guest INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
        ),
        "CREATE INDEX doc_access_guest_idle ON doc_access (guest, last_accessed_at)",
    ),
)
assert len(MIGRATIONS) == SCHEMA_VERSION

# The largest seq ever assigned: sqlite_sequence remembers it even after the rows are gone.
LAST_SEQ = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0),"
    " coalesce((SELECT max(seq) FROM updates), 0))"
)
# Snapshot (kind 0) then the log rows after it (kind 1), in one statement: one read snapshot.
LOAD = (
    "SELECT 0, seq, blob FROM snapshots WHERE doc = :doc"
    " UNION ALL"
    " SELECT 1, seq, blob FROM updates WHERE doc = :doc"
    " AND seq > coalesce((SELECT seq FROM snapshots WHERE doc = :doc), 0)"
    " ORDER BY 1, 2"
)
# A snapshot past the point (kind 0: the rows after it were folded), then the log rows after it.
UPDATES_AFTER = (
    "SELECT 0, seq, NULL FROM snapshots WHERE doc = :doc AND seq > :after"
    " UNION ALL"
    " SELECT * FROM (SELECT 1, seq, blob FROM updates WHERE doc = :doc AND seq > :after ORDER BY seq LIMIT :limit)"
    " ORDER BY 1, 2"
)
INSERT_RESPONSE = (
    "INSERT INTO responses (tenant, key, fingerprint, record, created_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (tenant, key) DO NOTHING"
)

SELECT_RESPONSE = "SELECT tenant, key, fingerprint, record, created_at FROM responses WHERE tenant = ? AND key = ?"
