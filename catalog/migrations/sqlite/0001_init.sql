-- One row per archived message. seq is the compact reference postings use
-- (an 8-byte-or-less varint instead of the 39-byte archive id); tokens is
-- the row's deduplicated token set (8 bytes each, big endian) so that a
-- replace or delete removes exactly its postings without an index on msg.
CREATE TABLE messages (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    received_at INTEGER NOT NULL, -- Unix nanoseconds
    size        INTEGER NOT NULL,
    flags       INTEGER NOT NULL,
    summary     BLOB    NOT NULL, -- sealed (SummaryBox)
    tokens      BLOB    NOT NULL
);

-- The archive listing's order, for searches driven by no token.
CREATE INDEX messages_newest ON messages (received_at DESC, id);

-- One posting per (token, message). The key lets a single-token search
-- scan newest first and stop at its LIMIT, and lets EXISTS checks be point
-- lookups (token, the candidate's received_at, its seq).
CREATE TABLE postings (
    token       INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    msg         INTEGER NOT NULL,
    PRIMARY KEY (token, received_at DESC, msg)
) WITHOUT ROWID;
