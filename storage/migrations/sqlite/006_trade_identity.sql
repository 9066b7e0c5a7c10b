-- One identity per trade: (exchange, symbol, trade_id), whatever its event time (see postgres/006). SQLite
-- has no partitioning, so the identity is a second unique index on trades itself; the store's
-- de-duplicating insert (ON CONFLICT DO NOTHING) honours both keys.
--
-- A database that already holds the same trade id at two event times keeps the version received first
-- (smallest ts_recv, then ts_event, then rowid) in trades and moves every other version, unchanged, to
-- trade_duplicates: no row is deleted.
CREATE TABLE IF NOT EXISTS trade_duplicates (
    exchange   TEXT    NOT NULL,
    symbol     TEXT    NOT NULL,
    raw_symbol TEXT    NOT NULL,
    trade_id   TEXT    NOT NULL,
    sequence   INTEGER,
    price      TEXT    NOT NULL,
    quantity   TEXT    NOT NULL,
    side       TEXT    NOT NULL,
    ts_event   INTEGER NOT NULL,
    ts_recv    INTEGER NOT NULL,
    backfilled INTEGER NOT NULL,
    moved_at   INTEGER NOT NULL
);

CREATE TABLE migration_006_moved AS
SELECT rid FROM (
    SELECT rowid AS rid, row_number() OVER (
        PARTITION BY exchange, symbol, trade_id ORDER BY ts_recv, ts_event, rowid) AS n
    FROM trades)
WHERE n > 1;

INSERT INTO trade_duplicates (exchange, symbol, raw_symbol, trade_id, sequence, price, quantity, side,
                              ts_event, ts_recv, backfilled, moved_at)
SELECT exchange, symbol, raw_symbol, trade_id, sequence, price, quantity, side, ts_event, ts_recv,
       backfilled, CAST(strftime('%s', 'now') AS INTEGER) * 1000000000
FROM trades WHERE rowid IN (SELECT rid FROM migration_006_moved) ORDER BY rowid;

DELETE FROM trades WHERE rowid IN (SELECT rid FROM migration_006_moved);
DROP TABLE migration_006_moved;

CREATE UNIQUE INDEX IF NOT EXISTS trades_identity ON trades (exchange, symbol, trade_id);
