-- TimescaleDB: trades and bars as hypertables with native compression, compression and retention
-- policies. Applied by PostgresStore.migrate() only where the extension is available (after
-- postgres/001). Policy intervals come from session settings the store sets for this transaction
-- (cryptostock.*; see storage.postgres.TimescalePolicy); the defaults below apply when unset.
-- An empty setting disables that policy.
CREATE EXTENSION IF NOT EXISTS timescaledb;

-- No default time index: the unique keys (exchange, symbol, time, ...) already serve every query.
SELECT create_hypertable('trades', 'ts_event', chunk_time_interval => INTERVAL '1 day',
                         create_default_indexes => false, migrate_data => true, if_not_exists => true);
SELECT create_hypertable('bars', 'open_time', chunk_time_interval => INTERVAL '30 days',
                         create_default_indexes => false, migrate_data => true, if_not_exists => true);

ALTER TABLE trades SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'exchange, symbol',
    timescaledb.compress_orderby = 'ts_event DESC, trade_id DESC'
);
ALTER TABLE bars SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'exchange, symbol, timeframe',
    timescaledb.compress_orderby = 'open_time DESC'
);

SELECT add_compression_policy('trades', s.value::interval, if_not_exists => true)
FROM (SELECT coalesce(current_setting('cryptostock.trades_compress_after', true), '7 days') AS value) AS s
WHERE s.value <> '';
SELECT add_retention_policy('trades', s.value::interval, if_not_exists => true)
FROM (SELECT coalesce(current_setting('cryptostock.trades_retain', true), '90 days') AS value) AS s
WHERE s.value <> '';
SELECT add_compression_policy('bars', s.value::interval, if_not_exists => true)
FROM (SELECT coalesce(current_setting('cryptostock.bars_compress_after', true), '30 days') AS value) AS s
WHERE s.value <> '';
-- No retention on bars unless configured: they are small and are the product.
SELECT add_retention_policy('bars', s.value::interval, if_not_exists => true)
FROM (SELECT coalesce(current_setting('cryptostock.bars_retain', true), '') AS value) AS s
WHERE s.value <> '';
