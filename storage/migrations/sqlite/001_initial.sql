-- Embedded schema: prices and sizes TEXT (the exchange's exact strings), times INTEGER ns UTC.
CREATE TABLE IF NOT EXISTS symbols (
    exchange   TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    raw_symbol TEXT NOT NULL,
    base       TEXT NOT NULL,
    quote      TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS trades (
    exchange   TEXT    NOT NULL,
    symbol     TEXT    NOT NULL,
    raw_symbol TEXT    NOT NULL,
    trade_id   INTEGER NOT NULL,
    price      TEXT    NOT NULL,
    quantity   TEXT    NOT NULL,
    side       TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    ts_event   INTEGER NOT NULL,
    ts_recv    INTEGER NOT NULL,
    backfilled INTEGER NOT NULL DEFAULT 0,
    -- The idempotence key; (ts_event before trade_id) also serves the per-symbol time-ordered reads.
    UNIQUE (exchange, symbol, ts_event, trade_id)
);

CREATE TABLE IF NOT EXISTS bars (
    exchange       TEXT    NOT NULL,
    symbol         TEXT    NOT NULL,
    timeframe      TEXT    NOT NULL,
    open_time      INTEGER NOT NULL,
    close_time     INTEGER NOT NULL,
    open           TEXT    NOT NULL,
    high           TEXT    NOT NULL,
    low            TEXT    NOT NULL,
    close          TEXT    NOT NULL,
    volume         REAL    NOT NULL,
    quote_volume   REAL    NOT NULL,
    vwap           REAL    NOT NULL,
    trade_count    INTEGER NOT NULL,
    buy_volume     REAL    NOT NULL,
    sell_volume    REAL    NOT NULL,
    first_trade_id INTEGER NOT NULL,
    last_trade_id  INTEGER NOT NULL,
    sma_20         REAL,
    ema_20         REAL,
    rsi_14         REAL,
    macd           REAL,
    macd_signal    REAL,
    macd_hist      REAL,
    bb_upper       REAL,
    bb_middle      REAL,
    bb_lower       REAL,
    atr_14         REAL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, open_time)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS platform_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
