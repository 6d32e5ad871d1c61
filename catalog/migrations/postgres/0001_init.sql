-- One row per archived message. seq is the compact reference postings use
-- instead of the 39-byte archive id; tokens is the row's deduplicated token
-- set (8 bytes each, big endian) so that a replace or delete removes exactly
-- its postings without an index on msg. Ids compare bytewise (COLLATE "C"),
-- as on SQLite, so paging orders agree on both backends.
CREATE TABLE messages (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text COLLATE "C" NOT NULL UNIQUE,
    received_at bigint NOT NULL, -- Unix nanoseconds
    size        bigint NOT NULL,
    flags       bigint NOT NULL,
    summary     bytea  NOT NULL, -- sealed (SummaryBox)
    tokens      bytea  NOT NULL
);

-- The archive listing's order, for searches driven by no token.
CREATE INDEX messages_newest ON messages (received_at DESC, id);

-- One posting per (token, message). The key lets a single-token search
-- scan newest first (a backward index scan: a PRIMARY KEY cannot be
-- declared DESC here) and stop at its LIMIT, and lets EXISTS checks be
-- point lookups (token, the candidate's received_at, its seq).
CREATE TABLE postings (
    token       bigint NOT NULL,
    received_at bigint NOT NULL,
    msg         bigint NOT NULL,
    PRIMARY KEY (token, received_at, msg)
);
