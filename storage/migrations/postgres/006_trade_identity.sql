-- One identity per trade: (exchange, symbol, trade_id), whatever its event time. The trades table's unique
-- key has to include ts_event (TimescaleDB requires the partition column in every unique index of a
-- hypertable), so on its own it let the same trade be stored twice when it came back with another
-- timestamp (a venue correcting a time, a REST repair reporting another precision than the websocket).
-- trade_ids is a plain table (never a hypertable) keyed on the identity alone; the store inserts into it
-- and into trades in the same statement, so a trade id seen again is a duplicate and nothing is stored.
-- ts_event records which version was kept (and lets the table be pruned by age like trades).
--
-- An existing database that already holds such duplicates keeps, per identity, the version received
-- first (smallest ts_recv, then ts_event) in trades; every other version is moved, unchanged, to
-- trade_duplicates: no row is deleted, and an operator can inspect or restore them. Bars stored before
-- this migration counted both versions and are not rebuilt (see docs/operations.md, "Trade identity").
CREATE TABLE IF NOT EXISTS trade_ids (
    exchange text               NOT NULL,
    symbol   text               NOT NULL,
    trade_id text COLLATE "C"   NOT NULL,
    ts_event timestamptz        NOT NULL,
    CONSTRAINT trade_ids_key PRIMARY KEY (exchange, symbol, trade_id)
);

CREATE TABLE IF NOT EXISTS trade_duplicates (
    LIKE trades,
    moved_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO trade_ids (exchange, symbol, trade_id, ts_event)
SELECT DISTINCT ON (exchange, symbol, trade_id) exchange, symbol, trade_id, ts_event
FROM trades
ORDER BY exchange, symbol, trade_id, ts_recv, ts_event;

DO $$
BEGIN
    IF (SELECT count(*) FROM trade_ids) = (SELECT count(*) FROM trades) THEN
        RETURN;  -- no duplicates: nothing to move, compressed chunks stay as they are
    END IF;
    PERFORM cryptostock_suspend_compression('trades');
    WITH moved AS (
        DELETE FROM trades t USING trade_ids i
        WHERE t.exchange = i.exchange AND t.symbol = i.symbol AND t.trade_id = i.trade_id
            AND t.ts_event <> i.ts_event
        RETURNING t.*
    )
    INSERT INTO trade_duplicates SELECT * FROM moved;
    PERFORM cryptostock_restore_compression('trades');
END $$;
