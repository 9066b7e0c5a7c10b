-- Coverage events (see postgres/004): gaps found, repaired or abandoned, and unverifiable intervals.
CREATE TABLE IF NOT EXISTS coverage (
    exchange       TEXT    NOT NULL,
    symbol         TEXT    NOT NULL,
    raw_symbol     TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('gap', 'repaired', 'abandoned', 'unverified')),
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER NOT NULL,
    recorded_ns    INTEGER NOT NULL,
    first_sequence INTEGER,
    last_sequence  INTEGER,
    trades         INTEGER,
    detail         TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (exchange, symbol, start_ns, kind, recorded_ns, end_ns)
) WITHOUT ROWID;
