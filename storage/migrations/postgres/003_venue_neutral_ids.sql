-- Venue-neutral trade identity. A trade keeps the venue's own id exactly as sent, as text (Coinbase and
-- Binance send integers, OKX numeric strings, Bybit UUID-like strings); `sequence` holds the contiguous
-- per-symbol integer that gap detection and coverage use, where the venue guarantees one (NULL elsewhere).
-- Bars name their open and close trades by those text ids. Every row stored before this migration came
-- from a venue with contiguous integer ids, so its id is also its sequence. No row is added, lost or
-- changed otherwise.
--
-- TimescaleDB refuses to change a column's type while compression is enabled on a hypertable. Where the
-- tables are compressed hypertables, their compression policies are read, the policies removed, the
-- chunks decompressed and compression switched off; after the change it is all restored as it was.
-- trade_id sorts by bytes (COLLATE "C"): ids are ASCII, and the unique key stays cheap to maintain.
CREATE TEMP TABLE migration_003_compression (tbl text PRIMARY KEY, compress_after text);

DO $$
DECLARE
    t text;
BEGIN
    IF to_regclass('timescaledb_information.hypertables') IS NULL THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['trades', 'bars'] LOOP
        IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                   WHERE hypertable_name = t AND compression_enabled) THEN
            INSERT INTO migration_003_compression
            SELECT t, (SELECT config->>'compress_after' FROM timescaledb_information.jobs
                       WHERE hypertable_name = t AND proc_name = 'policy_compression' LIMIT 1);
            EXECUTE format('SELECT remove_compression_policy(%L, if_exists => true)', t);
            EXECUTE format('SELECT count(decompress_chunk(c, if_compressed => true)) FROM show_chunks(%L) c', t);
            EXECUTE format('ALTER TABLE %I SET (timescaledb.compress = false)', t);
        END IF;
    END LOOP;
END $$;

ALTER TABLE trades ADD COLUMN sequence bigint;
UPDATE trades SET sequence = trade_id;
ALTER TABLE trades ALTER COLUMN trade_id TYPE text COLLATE "C" USING trade_id::text;
ALTER TABLE bars
    ALTER COLUMN first_trade_id TYPE text COLLATE "C" USING first_trade_id::text,
    ALTER COLUMN last_trade_id TYPE text COLLATE "C" USING last_trade_id::text;

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM migration_003_compression LOOP
        IF r.tbl = 'trades' THEN
            ALTER TABLE trades SET (
                timescaledb.compress,
                timescaledb.compress_segmentby = 'exchange, symbol',
                timescaledb.compress_orderby = 'ts_event DESC, trade_id DESC'
            );
        ELSE
            ALTER TABLE bars SET (
                timescaledb.compress,
                timescaledb.compress_segmentby = 'exchange, symbol, timeframe',
                timescaledb.compress_orderby = 'open_time DESC'
            );
        END IF;
        IF r.compress_after IS NOT NULL THEN
            EXECUTE format('SELECT add_compression_policy(%L, %L::interval, if_not_exists => true)',
                           r.tbl, r.compress_after);
        END IF;
    END LOOP;
END $$;

DROP TABLE migration_003_compression;
