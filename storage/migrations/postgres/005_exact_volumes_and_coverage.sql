-- Exact volumes and bar coverage. volume, quote_volume, buy_volume and sell_volume become numeric: the
-- processor sums the venue's decimal strings exactly and writes the exact text. A bar stored before this
-- migration keeps the value of its float sum (as numeric, to 15 significant digits) and has coverage
-- 'unverifiable': no one checked it. New columns: the bar's sequence range, how many of its trades carry a
-- sequence and how many were repaired over REST, its coverage (processor/coverage.py), and the event
-- times of its open and close trades (0 where unknown), which a restart needs to rebuild open bars exactly.
--
-- TimescaleDB cannot change a column's type while compression is on. Two functions, kept for later
-- migrations, switch compression off for a hypertable (remembering its settings and policy, decompressing
-- its chunks) and back on exactly as it was; on plain PostgreSQL, or a table that is not compressed, they
-- do nothing.
CREATE TABLE IF NOT EXISTS cryptostock_suspended_compression (
    target         text PRIMARY KEY,
    segmentby      text,
    orderby        text,
    compress_after text
);

CREATE OR REPLACE FUNCTION cryptostock_suspend_compression(target text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('timescaledb_information.hypertables') IS NULL THEN
        RETURN;  -- plain PostgreSQL (a separate IF: the view below must not even be planned)
    END IF;
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                   WHERE h.hypertable_name = target AND h.compression_enabled) THEN
        RETURN;
    END IF;
    INSERT INTO cryptostock_suspended_compression
    SELECT target,
           (SELECT string_agg(quote_ident(s.attname), ', ' ORDER BY s.segmentby_column_index)
            FROM timescaledb_information.compression_settings s
            WHERE s.hypertable_name = target AND s.segmentby_column_index IS NOT NULL),
           (SELECT string_agg(quote_ident(s.attname)
                              || CASE WHEN s.orderby_asc THEN ' ASC' ELSE ' DESC' END
                              || CASE WHEN s.orderby_nullsfirst THEN ' NULLS FIRST' ELSE ' NULLS LAST' END,
                              ', ' ORDER BY s.orderby_column_index)
            FROM timescaledb_information.compression_settings s
            WHERE s.hypertable_name = target AND s.orderby_column_index IS NOT NULL),
           (SELECT j.config->>'compress_after' FROM timescaledb_information.jobs j
            WHERE j.hypertable_name = target AND j.proc_name = 'policy_compression' LIMIT 1);
    PERFORM remove_compression_policy(target, if_exists => true);
    EXECUTE format('SELECT count(decompress_chunk(c, if_compressed => true)) FROM show_chunks(%L) c', target);
    EXECUTE format('ALTER TABLE %I SET (timescaledb.compress = false)', target);
END $$;

CREATE OR REPLACE FUNCTION cryptostock_restore_compression(target text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    saved cryptostock_suspended_compression%ROWTYPE;
BEGIN
    SELECT * INTO saved FROM cryptostock_suspended_compression s WHERE s.target = $1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE %I SET (timescaledb.compress, timescaledb.compress_segmentby = %L, '
                   'timescaledb.compress_orderby = %L)', target, coalesce(saved.segmentby, ''), saved.orderby);
    IF saved.compress_after IS NOT NULL THEN
        PERFORM add_compression_policy(target, saved.compress_after::interval, if_not_exists => true);
    END IF;
    DELETE FROM cryptostock_suspended_compression s WHERE s.target = $1;
END $$;

SELECT cryptostock_suspend_compression('bars');

ALTER TABLE bars
    ALTER COLUMN volume TYPE numeric USING volume::numeric,
    ALTER COLUMN quote_volume TYPE numeric USING quote_volume::numeric,
    ALTER COLUMN buy_volume TYPE numeric USING buy_volume::numeric,
    ALTER COLUMN sell_volume TYPE numeric USING sell_volume::numeric,
    ADD COLUMN IF NOT EXISTS min_sequence     bigint,
    ADD COLUMN IF NOT EXISTS max_sequence     bigint,
    ADD COLUMN IF NOT EXISTS sequenced_trades integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS repaired_trades  integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS coverage         text    NOT NULL DEFAULT 'unverifiable'
        CHECK (coverage IN ('complete', 'repaired', 'incomplete', 'unverifiable')),
    ADD COLUMN IF NOT EXISTS first_trade_ns   bigint  NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_trade_ns    bigint  NOT NULL DEFAULT 0;

SELECT cryptostock_restore_compression('bars');
