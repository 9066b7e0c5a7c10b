"""The real migration SQL (base schema + TimescaleDB file) on a real TimescaleDB engine, through
../shared/tools/timescaledb-check (PGlite + TimescaleDB, psql simple protocol)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from storage.postgres.trade_writes import SQL_INSERT_NEW_TRADES, SQL_INSERT_TRADES, SQL_TEMP_TRADES

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT.parent / "shared" / "tools" / "timescaledb-check"
BASE = ROOT / "storage" / "migrations" / "postgres" / "001_initial.sql"
POSTGRES = sorted((ROOT / "storage" / "migrations" / "postgres").glob("*.sql"))
FEATURES = ROOT / "storage" / "migrations" / "postgres" / "002_bar_features.sql"
TIMESCALE = ROOT / "storage" / "migrations" / "timescale" / "100_hypertables.sql"
TRADE_IDS_RETENTION = ROOT / "storage" / "migrations" / "timescale" / "101_trade_ids_retention.sql"

VERIFY_DEFAULTS = """
DO $$
DECLARE n int;
BEGIN
    SELECT count(*) INTO n FROM timescaledb_information.hypertables
        WHERE hypertable_name IN ('trades', 'bars') AND compression_enabled;
    IF n <> 2 THEN RAISE EXCEPTION 'expected 2 compressed hypertables, found %', n; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'trades'
        AND proc_name = 'policy_compression' AND config->>'compress_after' = '7 days';
    IF NOT FOUND THEN RAISE EXCEPTION 'trades compression policy missing'; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'trades'
        AND proc_name = 'policy_retention' AND config->>'drop_after' = '90 days';
    IF NOT FOUND THEN RAISE EXCEPTION 'trades retention policy missing'; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'bars'
        AND proc_name = 'policy_compression' AND config->>'compress_after' = '30 days';
    IF NOT FOUND THEN RAISE EXCEPTION 'bars compression policy missing'; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'bars'
        AND proc_name = 'policy_retention';
    IF FOUND THEN RAISE EXCEPTION 'bars must have no retention policy by default'; END IF;
END $$;
-- the store's write path on a hypertable: de-duplicating insert, exact numeric text
CREATE TEMP TABLE trades_in (LIKE trades);
INSERT INTO trades_in VALUES
    ('binance', 'BTC-USDT', 'BTCUSDT', '1', '0.00150000', '2.50', 'buy',
     '2024-01-01 00:00:00.000001+00', now(), false, 1),
    ('binance', 'BTC-USDT', 'BTCUSDT', '1', '0.00150000', '2.50', 'buy',
     '2024-01-01 00:00:00.000001+00', now(), false, 1),
    ('okx', 'BTC-USDT', 'BTC-USDT', '01cacfe9-8d1c', '67000.10', '0.1', 'sell',
     '2024-01-02 00:00:00+00', now(), false, NULL);
DO $$
DECLARE n int; p text;
BEGIN
    WITH ins AS (INSERT INTO trades SELECT * FROM trades_in ON CONFLICT DO NOTHING RETURNING 1)
    SELECT count(*) INTO n FROM ins;
    IF n <> 2 THEN RAISE EXCEPTION 'expected 2 new trades, got %', n; END IF;
    PERFORM 1 FROM trades WHERE trade_id = '01cacfe9-8d1c' AND sequence IS NULL;
    IF NOT FOUND THEN RAISE EXCEPTION 'a text trade id did not round-trip'; END IF;
    SELECT price::text INTO p FROM trades WHERE trade_id = '1';
    IF p <> '0.00150000' THEN RAISE EXCEPTION 'price came back as %', p; END IF;
END $$;
SELECT compress_chunk(c) FROM show_chunks('trades') AS c;
"""

VERIFY_CONFIGURED = """
DO $$
BEGIN
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'trades'
        AND proc_name = 'policy_retention';
    IF FOUND THEN RAISE EXCEPTION 'trades retention was disabled but exists'; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'bars'
        AND proc_name = 'policy_retention' AND config->>'drop_after' = '1 year';
    IF NOT FOUND THEN RAISE EXCEPTION 'configured bars retention missing'; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE proc_name = 'cryptostock_prune_trade_ids';
    IF FOUND THEN RAISE EXCEPTION 'trade_ids pruned although trades retention is disabled'; END IF;
END $$;
"""


ENGINE_START_ATTEMPTS = 3
ENGINE_DID_NOT_START = "engine did not start"


def run_check(*files: Path) -> subprocess.CompletedProcess[str]:
    if not TOOL.exists():
        pytest.skip(f"{TOOL} is absent (../shared not present)")
    for tool in ("node", "npm", "psql"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed; timescaledb-check needs node, npm and psql")
    for _attempt in range(ENGINE_START_ATTEMPTS):
        result = subprocess.run(
            [str(TOOL), *map(str, files)], capture_output=True, text=True, timeout=110, check=False
        )
        # The engine (a node process) gets 60 s to start; on a loaded 2-core machine it can miss that.
        # Only that failure of the tool itself is retried; anything our SQL does is not.
        if ENGINE_DID_NOT_START not in result.stderr:
            break
    return result


def assert_ran(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "timescaledb-check: all files ran" in result.stdout


def test_migrations_with_default_policies(tmp_path: Path) -> None:
    verify = tmp_path / "verify.sql"
    verify.write_text(VERIFY_DEFAULTS)
    assert_ran(run_check(*POSTGRES, TIMESCALE, verify))


def test_policies_follow_the_store_settings(tmp_path: Path) -> None:
    # PostgresStore.migrate() sets these with set_config(..., true) in the migration's transaction.
    configured = tmp_path / "configured.sql"
    configured.write_text(
        "SELECT set_config('cryptostock.trades_retain', '', false);\n"
        "SELECT set_config('cryptostock.bars_retain', '1 year', false);\n"
        + TIMESCALE.read_text()
        + TRADE_IDS_RETENTION.read_text()
    )
    verify = tmp_path / "verify.sql"
    verify.write_text(VERIFY_CONFIGURED)
    assert_ran(run_check(BASE, configured, verify))


COMPRESSED_BAR = """
INSERT INTO bars (exchange, symbol, timeframe, open_time, close_time, open, high, low, close, volume,
                  quote_volume, vwap, trade_count, buy_volume, sell_volume, first_trade_id, last_trade_id)
VALUES ('binance', 'BTC-USDT', '1m', '2024-01-01 00:00+00', '2024-01-01 00:01+00', 1, 2, 0.5, 1.5, 3, 4.5,
        1.5, 2, 1, 2, 1, 2);
SELECT compress_chunk(c) FROM show_chunks('bars') c;
"""

FEATURED_BAR = """
INSERT INTO bars (exchange, symbol, timeframe, open_time, close_time, open, high, low, close, volume,
                  quote_volume, vwap, trade_count, buy_volume, sell_volume, first_trade_id, last_trade_id,
                  log_return, taker_buy_ratio)
VALUES ('binance', 'BTC-USDT', '1m', '2024-06-01 00:00+00', '2024-06-01 00:01+00', 1, 2, 0.5, 1.5, 3, 4.5,
        1.5, 2, 1, 2, 3, 4, 0.01, 0.5);
DO $$ BEGIN
    PERFORM 1 FROM bars WHERE log_return = 0.01 AND taker_buy_ratio = 0.5;
    IF NOT FOUND THEN RAISE EXCEPTION 'features not stored'; END IF;
    PERFORM 1 FROM bars WHERE open_time = '2024-01-01 00:00+00' AND log_return IS NULL;
    IF NOT FOUND THEN RAISE EXCEPTION 'the compressed bar is gone'; END IF;
END $$;
"""


def test_feature_columns_upgrade_a_deployment_with_compressed_bars(tmp_path: Path) -> None:
    """An existing TimescaleDB deployment applies 002 after its hypertables exist and chunks are
    compressed (version order is per database: 100 was applied before 002 shipped)."""
    compressed = tmp_path / "compressed.sql"
    compressed.write_text(COMPRESSED_BAR)
    featured = tmp_path / "featured.sql"
    featured.write_text(FEATURED_BAR)
    assert_ran(run_check(BASE, TIMESCALE, compressed, FEATURES, featured))


OLD_ROWS = """
-- a deployment created by schema 001-002 + hypertables, with data in compressed chunks
INSERT INTO trades (exchange, symbol, raw_symbol, trade_id, price, quantity, side, ts_event, ts_recv,
                    backfilled)
SELECT 'binance', 'BTC-USDT', 'BTCUSDT', 9007199254740993 + g, ('67000.' || g)::numeric, 0.00150000, 'buy',
       '2024-01-01 00:00+00'::timestamptz + g * interval '1 second', now(), g % 2 = 0
FROM generate_series(1, 500) g;
INSERT INTO bars (exchange, symbol, timeframe, open_time, close_time, open, high, low, close, volume,
                  quote_volume, vwap, trade_count, buy_volume, sell_volume, first_trade_id, last_trade_id)
VALUES ('binance', 'BTC-USDT', '1m', '2024-01-01 00:00+00', '2024-01-01 00:01+00', 1, 2, 0.5, 1.5, 3, 4.5,
        1.5, 2, 1, 2, 9007199254740994, 9007199254741053);
CREATE TABLE before_upgrade AS SELECT trade_id, price::text AS price, ts_event FROM trades;
SELECT count(compress_chunk(c)) FROM show_chunks('trades') c;
SELECT count(compress_chunk(c)) FROM show_chunks('bars') c;
"""

UPGRADED = """
DO $$
DECLARE n int;
BEGIN
    SELECT count(*) INTO n FROM trades t JOIN before_upgrade b
        ON t.trade_id = b.trade_id::text AND t.sequence = b.trade_id AND t.price::text = b.price
        AND t.ts_event = b.ts_event;
    IF n <> 500 OR (SELECT count(*) FROM trades) <> 500 THEN
        RAISE EXCEPTION 'rows changed by the upgrade: % of 500 kept', n;
    END IF;
    PERFORM 1 FROM bars WHERE first_trade_id = '9007199254740994' AND last_trade_id = '9007199254741053';
    IF NOT FOUND THEN RAISE EXCEPTION 'bar trade ids not converted to text'; END IF;
    SELECT count(*) INTO n FROM timescaledb_information.hypertables
        WHERE hypertable_name IN ('trades', 'bars') AND compression_enabled;
    IF n <> 2 THEN RAISE EXCEPTION 'compression not restored (% hypertables)', n; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'trades'
        AND proc_name = 'policy_compression' AND config->>'compress_after' = '7 days';
    IF NOT FOUND THEN RAISE EXCEPTION 'trades compression policy not restored'; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'bars'
        AND proc_name = 'policy_compression' AND config->>'compress_after' = '30 days';
    IF NOT FOUND THEN RAISE EXCEPTION 'bars compression policy not restored'; END IF;
END $$;
INSERT INTO trades (exchange, symbol, raw_symbol, trade_id, sequence, price, quantity, side, ts_event,
                    ts_recv, backfilled)
VALUES ('bybit', 'BTC-USDT', 'BTCUSDT', '01cacfe9-8d1c-5ee4-995d-d79a43f955a6', NULL, '1.5', '2', 'sell',
        '2024-01-01 00:00+00', now(), false);
SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('trades') c;
"""


def test_venue_neutral_ids_upgrade_a_compressed_deployment_without_changing_a_row(tmp_path: Path) -> None:
    """A TimescaleDB deployment made by today's schema (001, 002, hypertables) with compressed chunks
    applies 003: ids become text and sequences, nothing is lost, compression and its policies return."""
    old_rows = tmp_path / "old_rows.sql"
    old_rows.write_text(OLD_ROWS)
    upgraded = tmp_path / "upgraded.sql"
    upgraded.write_text(UPGRADED)
    venue_neutral = ROOT / "storage" / "migrations" / "postgres" / "003_venue_neutral_ids.sql"
    assert_ran(run_check(BASE, FEATURES, TIMESCALE, old_rows, venue_neutral, upgraded))


BARS_BEFORE_005 = """
-- a deployment of schema 001-004 + hypertables, a bar with float volumes in a compressed chunk
INSERT INTO bars (exchange, symbol, timeframe, open_time, close_time, open, high, low, close, volume,
                  quote_volume, vwap, trade_count, buy_volume, sell_volume, first_trade_id, last_trade_id)
VALUES ('binance', 'BTC-USDT', '1m', '2024-01-01 00:00+00', '2024-01-01 00:01+00', 1, 2, 0.5, 1.5,
        9.130919999999998, 4.5, 1.5, 2, 1.25, 7.880919999999998, '1', '2');
SELECT count(compress_chunk(c)) FROM show_chunks('bars') c;
"""

BARS_AFTER_005 = """
DO $$
DECLARE v text; c text; n int;
BEGIN
    SELECT volume::text, coverage INTO v, c FROM bars;
    IF v <> '9.13092' OR c <> 'unverifiable' THEN
        RAISE EXCEPTION 'old bar came back as volume %, coverage %', v, c;
    END IF;
    SELECT count(*) INTO n FROM timescaledb_information.hypertables
        WHERE hypertable_name = 'bars' AND compression_enabled;
    IF n <> 1 THEN RAISE EXCEPTION 'bars compression not restored'; END IF;
    PERFORM 1 FROM timescaledb_information.compression_settings WHERE hypertable_name = 'bars'
        AND attname = 'timeframe' AND segmentby_column_index = 3;
    IF NOT FOUND THEN RAISE EXCEPTION 'bars segmentby not restored'; END IF;
    PERFORM 1 FROM timescaledb_information.compression_settings WHERE hypertable_name = 'bars'
        AND attname = 'open_time' AND orderby_column_index = 1 AND NOT orderby_asc;
    IF NOT FOUND THEN RAISE EXCEPTION 'bars orderby not restored'; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'bars'
        AND proc_name = 'policy_compression' AND config->>'compress_after' = '30 days';
    IF NOT FOUND THEN RAISE EXCEPTION 'bars compression policy not restored'; END IF;
END $$;
INSERT INTO bars (exchange, symbol, timeframe, open_time, close_time, open, high, low, close, volume,
                  quote_volume, vwap, trade_count, buy_volume, sell_volume, first_trade_id, last_trade_id,
                  min_sequence, max_sequence, sequenced_trades, coverage, first_trade_ns, last_trade_ns)
VALUES ('okx', 'BTC-USDT', '1m', '2024-01-01 00:00+00', '2024-01-01 00:01+00', 1, 2, 0.5, 1.5,
        '9.13092000', '13.6963800000', 1.5, 2, '1.25000000', '7.88092000', '7', '8', 7, 8, 2, 'complete',
        1704067200000000001, 1704067259000000000);
DO $$
BEGIN
    PERFORM 1 FROM bars WHERE exchange = 'okx' AND volume::text = '9.13092000'
        AND quote_volume::text = '13.6963800000';
    IF NOT FOUND THEN RAISE EXCEPTION 'exact volumes did not keep their decimal places'; END IF;
END $$;
SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('bars') c;
"""


def test_exact_volumes_upgrade_a_compressed_deployment(tmp_path: Path) -> None:
    """005 on a TimescaleDB deployment with compressed bars: float volumes become numeric (the old value
    to 15 significant digits), coverage 'unverifiable' on old bars, compression settings and policy back
    as they were, and new bars keep their exact decimal text."""
    before, after = tmp_path / "before.sql", tmp_path / "after.sql"
    before.write_text(BARS_BEFORE_005)
    after.write_text(BARS_AFTER_005)
    postgres = ROOT / "storage" / "migrations" / "postgres"
    early = [postgres / name for name in ("003_venue_neutral_ids.sql", "004_coverage.sql")]
    exact = postgres / "005_exact_volumes_and_coverage.sql"
    assert_ran(run_check(BASE, FEATURES, TIMESCALE, *early, before, exact, after))


DUPLICATE_VERSIONS = """
-- a deployment of schema 001-005 + hypertables that stored trade '7' twice (two event times, two chunks)
INSERT INTO trades (exchange, symbol, raw_symbol, trade_id, sequence, price, quantity, side, ts_event,
                    ts_recv, backfilled)
SELECT 'binance', 'BTC-USDT', 'BTCUSDT', g::text, g, 1.5, 2, 'buy',
       '2024-01-01 00:00+00'::timestamptz + g * interval '1 second',
       '2024-01-01 00:00+00'::timestamptz + g * interval '1 second', false
FROM generate_series(1, 100) g;
INSERT INTO trades (exchange, symbol, raw_symbol, trade_id, sequence, price, quantity, side, ts_event,
                    ts_recv, backfilled)
VALUES ('binance', 'BTC-USDT', 'BTCUSDT', '7', 7, 9.5, 2, 'sell', '2024-01-03 00:00+00',
        '2024-01-03 00:00+00', true);
SELECT count(compress_chunk(c)) FROM show_chunks('trades') c;
"""

ONE_IDENTITY = """
DO $$
DECLARE n int;
BEGIN
    IF (SELECT count(*) FROM trades) <> 100 OR (SELECT count(*) FROM trade_duplicates) <> 1 THEN
        RAISE EXCEPTION 'expected 100 trades + 1 moved, got % + %',
            (SELECT count(*) FROM trades), (SELECT count(*) FROM trade_duplicates);
    END IF;
    PERFORM 1 FROM trades WHERE trade_id = '7' AND price = 1.5 AND ts_event = '2024-01-01 00:00:07+00';
    IF NOT FOUND THEN RAISE EXCEPTION 'the version received first was not kept'; END IF;
    PERFORM 1 FROM trade_duplicates WHERE trade_id = '7' AND price = 9.5 AND backfilled;
    IF NOT FOUND THEN RAISE EXCEPTION 'the later version was not moved aside unchanged'; END IF;
    IF (SELECT count(*) FROM trade_ids) <> 100 THEN RAISE EXCEPTION 'trade_ids not filled'; END IF;
    SELECT count(*) INTO n FROM timescaledb_information.hypertables
        WHERE hypertable_name = 'trades' AND compression_enabled;
    IF n <> 1 THEN RAISE EXCEPTION 'trades compression not restored'; END IF;
    PERFORM 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'trades'
        AND proc_name = 'policy_compression' AND config->>'compress_after' = '7 days';
    IF NOT FOUND THEN RAISE EXCEPTION 'trades compression policy not restored'; END IF;
END $$;
"""


def store_write_path() -> str:
    """The store's own insert statements on a hypertable: a known id at another time (another chunk) is
    refused by the plain insert and dropped by the de-duplicating one; a new id is stored."""
    day = 86_400 * 10**9
    t0 = 1_704_067_200 * 10**9  # 2024-01-01

    def staged(*trades: tuple[str, int]) -> str:
        values = ", ".join(
            f"('binance', 'BTC-USDT', 'BTCUSDT', '{tid}', NULL, '1.5', '2', 'buy', {ts}, {ts}, false)"
            for tid, ts in trades
        )
        return f"DELETE FROM trades_in;\nINSERT INTO trades_in VALUES {values};\n"

    return f"""
BEGIN;
{SQL_TEMP_TRADES};
{staged(("a", t0), ("b", t0 + 1000))}
{SQL_INSERT_TRADES};
COMMIT;
SELECT count(compress_chunk(c)) FROM show_chunks('trades') c;
BEGIN;
{SQL_TEMP_TRADES};
{staged(("a", t0 + 2 * day), ("c", t0 + 2 * day))}
DO $do$
BEGIN
    EXECUTE $q${SQL_INSERT_TRADES}$q$;
    RAISE EXCEPTION 'the plain insert stored a known trade id at another time';
EXCEPTION WHEN unique_violation THEN
    NULL;
END $do$;
{SQL_INSERT_NEW_TRADES};
COMMIT;
DO $$
BEGIN
    IF (SELECT count(*) FROM trades WHERE trade_id = 'a') <> 1 THEN
        RAISE EXCEPTION 'trade a stored twice';
    END IF;
    PERFORM 1 FROM trades WHERE trade_id = 'a' AND ts_event = '2024-01-01 00:00+00';
    IF NOT FOUND THEN RAISE EXCEPTION 'trade a lost its first version'; END IF;
    PERFORM 1 FROM trades WHERE trade_id = 'c';
    IF NOT FOUND THEN RAISE EXCEPTION 'the new trade c was not stored'; END IF;
    IF (SELECT count(*) FROM trade_ids) <> 3 THEN RAISE EXCEPTION 'trade_ids out of step'; END IF;
END $$;
"""


def test_one_identity_per_trade_on_hypertables(tmp_path: Path) -> None:
    """Migration 006 on a fresh TimescaleDB schema, then the store's statements: a trade id is stored once
    whatever its event time, although the hypertable's own unique key includes ts_event."""
    write_path = tmp_path / "write_path.sql"
    write_path.write_text(store_write_path())
    assert_ran(run_check(*POSTGRES, TIMESCALE, write_path))


def test_one_identity_upgrade_moves_duplicates_out_of_compressed_chunks(tmp_path: Path) -> None:
    """006 on a deployment (001-005 + hypertables) whose compressed chunks hold one trade id at two times:
    the version received first stays, the other moves to trade_duplicates, compression comes back."""
    before, after = tmp_path / "before.sql", tmp_path / "after.sql"
    before.write_text(DUPLICATE_VERSIONS)
    after.write_text(ONE_IDENTITY)
    postgres = ROOT / "storage" / "migrations" / "postgres"
    early = sorted(p for p in postgres.glob("*.sql") if p.name[:3] in ("003", "004", "005"))
    identity = postgres / "006_trade_identity.sql"
    assert_ran(run_check(BASE, FEATURES, TIMESCALE, *early, before, identity, after))


PRUNED_IDENTITIES = """
INSERT INTO trade_ids VALUES ('binance', 'BTC-USDT', 'old', now() - interval '100 days'),
                             ('binance', 'BTC-USDT', 'new', now() - interval '1 day');
DO $$
DECLARE job int;
BEGIN
    SELECT job_id INTO job FROM timescaledb_information.jobs
        WHERE proc_name = 'cryptostock_prune_trade_ids' AND config->>'drop_after' = '90 days';
    IF job IS NULL THEN RAISE EXCEPTION 'no trade_ids retention job'; END IF;
END $$;
CALL cryptostock_prune_trade_ids(0, '{"drop_after": "90 days"}');
DO $$
BEGIN
    IF (SELECT array_agg(trade_id) FROM trade_ids)::text <> '{new}' THEN
        RAISE EXCEPTION 'identities after pruning: %', (SELECT array_agg(trade_id) FROM trade_ids);
    END IF;
END $$;
"""


def test_identities_are_pruned_with_the_trades_retention(tmp_path: Path) -> None:
    """101: a daily job drops trade identities older than the trades retention (default 90 days)."""
    verify = tmp_path / "pruned.sql"
    verify.write_text(PRUNED_IDENTITIES)
    assert_ran(run_check(*POSTGRES, TIMESCALE, TRADE_IDS_RETENTION, verify))
