-- Venue-neutral trade identity (see postgres/003): trade ids become the venue's text, `sequence` the
-- contiguous per-symbol integer where a venue guarantees one. SQLite cannot change a column's type, and a
-- TEXT value in an INTEGER column would be turned back into a number, so both tables are rebuilt with
-- every row copied. Rows stored before came from a venue with contiguous integer ids: id = sequence.
CREATE TABLE trades_v3 (
    exchange   TEXT    NOT NULL,
    symbol     TEXT    NOT NULL,
    raw_symbol TEXT    NOT NULL,
    trade_id   TEXT    NOT NULL,
    sequence   INTEGER,
    price      TEXT    NOT NULL,
    quantity   TEXT    NOT NULL,
    side       TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    ts_event   INTEGER NOT NULL,
    ts_recv    INTEGER NOT NULL,
    backfilled INTEGER NOT NULL DEFAULT 0,
    UNIQUE (exchange, symbol, ts_event, trade_id)
);
INSERT INTO trades_v3 (exchange, symbol, raw_symbol, trade_id, sequence, price, quantity, side, ts_event,
                       ts_recv, backfilled)
    SELECT exchange, symbol, raw_symbol, CAST(trade_id AS TEXT), trade_id, price, quantity, side, ts_event,
           ts_recv, backfilled
    FROM trades ORDER BY rowid;
DROP TABLE trades;
ALTER TABLE trades_v3 RENAME TO trades;

CREATE TABLE bars_v3 (
    exchange         TEXT    NOT NULL,
    symbol           TEXT    NOT NULL,
    timeframe        TEXT    NOT NULL,
    open_time        INTEGER NOT NULL,
    close_time       INTEGER NOT NULL,
    open             TEXT    NOT NULL,
    high             TEXT    NOT NULL,
    low              TEXT    NOT NULL,
    close            TEXT    NOT NULL,
    volume           REAL    NOT NULL,
    quote_volume     REAL    NOT NULL,
    vwap             REAL    NOT NULL,
    trade_count      INTEGER NOT NULL,
    buy_volume       REAL    NOT NULL,
    sell_volume      REAL    NOT NULL,
    first_trade_id   TEXT    NOT NULL,
    last_trade_id    TEXT    NOT NULL,
    sma_20           REAL,
    ema_20           REAL,
    rsi_14           REAL,
    macd             REAL,
    macd_signal      REAL,
    macd_hist        REAL,
    bb_upper         REAL,
    bb_middle        REAL,
    bb_lower         REAL,
    atr_14           REAL,
    updated_at       INTEGER NOT NULL,
    log_return       REAL,
    realized_vol_20  REAL,
    volume_zscore_20 REAL,
    taker_buy_ratio  REAL,
    range_pct        REAL,
    vwap_deviation   REAL,
    rsi_norm         REAL,
    PRIMARY KEY (exchange, symbol, timeframe, open_time)
) WITHOUT ROWID;
INSERT INTO bars_v3 (exchange, symbol, timeframe, open_time, close_time, open, high, low, close, volume,
                     quote_volume, vwap, trade_count, buy_volume, sell_volume, first_trade_id,
                     last_trade_id, sma_20, ema_20, rsi_14, macd, macd_signal, macd_hist, bb_upper,
                     bb_middle, bb_lower, atr_14, updated_at, log_return, realized_vol_20,
                     volume_zscore_20, taker_buy_ratio, range_pct, vwap_deviation, rsi_norm)
    SELECT exchange, symbol, timeframe, open_time, close_time, open, high, low, close, volume,
           quote_volume, vwap, trade_count, buy_volume, sell_volume, CAST(first_trade_id AS TEXT),
           CAST(last_trade_id AS TEXT), sma_20, ema_20, rsi_14, macd, macd_signal, macd_hist, bb_upper,
           bb_middle, bb_lower, atr_14, updated_at, log_return, realized_vol_20, volume_zscore_20,
           taker_buy_ratio, range_pct, vwap_deviation, rsi_norm
    FROM bars;
DROP TABLE bars;
ALTER TABLE bars_v3 RENAME TO bars;
