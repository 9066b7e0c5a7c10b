-- Exact volumes and bar coverage (see postgres/005). SQLite would turn decimal text in a REAL column back
-- into a binary float, so the bars table is rebuilt with TEXT volumes and every row copied; a bar stored
-- before keeps its float sum as text (15 significant digits) and coverage 'unverifiable'.
CREATE TABLE bars_v5 (
    exchange         TEXT    NOT NULL,
    symbol           TEXT    NOT NULL,
    timeframe        TEXT    NOT NULL,
    open_time        INTEGER NOT NULL,
    close_time       INTEGER NOT NULL,
    open             TEXT    NOT NULL,
    high             TEXT    NOT NULL,
    low              TEXT    NOT NULL,
    close            TEXT    NOT NULL,
    volume           TEXT    NOT NULL,
    quote_volume     TEXT    NOT NULL,
    vwap             REAL    NOT NULL,
    trade_count      INTEGER NOT NULL,
    buy_volume       TEXT    NOT NULL,
    sell_volume      TEXT    NOT NULL,
    first_trade_id   TEXT    NOT NULL,
    last_trade_id    TEXT    NOT NULL,
    min_sequence     INTEGER,
    max_sequence     INTEGER,
    sequenced_trades INTEGER NOT NULL DEFAULT 0,
    repaired_trades  INTEGER NOT NULL DEFAULT 0,
    coverage         TEXT    NOT NULL DEFAULT 'unverifiable'
        CHECK (coverage IN ('complete', 'repaired', 'incomplete', 'unverifiable')),
    first_trade_ns   INTEGER NOT NULL DEFAULT 0,
    last_trade_ns    INTEGER NOT NULL DEFAULT 0,
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
INSERT INTO bars_v5 (exchange, symbol, timeframe, open_time, close_time, open, high, low, close, volume,
                     quote_volume, vwap, trade_count, buy_volume, sell_volume, first_trade_id,
                     last_trade_id, sma_20, ema_20, rsi_14, macd, macd_signal, macd_hist, bb_upper,
                     bb_middle, bb_lower, atr_14, updated_at, log_return, realized_vol_20,
                     volume_zscore_20, taker_buy_ratio, range_pct, vwap_deviation, rsi_norm)
    SELECT exchange, symbol, timeframe, open_time, close_time, open, high, low, close,
           CAST(volume AS TEXT), CAST(quote_volume AS TEXT), vwap, trade_count, CAST(buy_volume AS TEXT),
           CAST(sell_volume AS TEXT), first_trade_id, last_trade_id, sma_20, ema_20, rsi_14, macd,
           macd_signal, macd_hist, bb_upper, bb_middle, bb_lower, atr_14, updated_at, log_return,
           realized_vol_20, volume_zscore_20, taker_buy_ratio, range_pct, vwap_deviation, rsi_norm
    FROM bars;
DROP TABLE bars;
ALTER TABLE bars_v5 RENAME TO bars;
