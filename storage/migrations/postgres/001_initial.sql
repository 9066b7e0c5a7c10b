-- Base schema (plain PostgreSQL; timescale/ turns trades and bars into hypertables when available).
-- Prices and sizes are numeric and read back with ::text, which keeps the exchange's exact string
-- (scale included: '0.00150000'). Times are timestamptz (microsecond precision; the store converts
-- integer ns at its edge, truncating the sub-microsecond part).
CREATE TABLE IF NOT EXISTS symbols (
    exchange   text NOT NULL,
    symbol     text NOT NULL,
    raw_symbol text NOT NULL,
    base       text NOT NULL,
    quote      text NOT NULL,
    PRIMARY KEY (exchange, symbol)
);

CREATE TABLE IF NOT EXISTS trades (
    exchange   text        NOT NULL,
    symbol     text        NOT NULL,
    raw_symbol text        NOT NULL,
    trade_id   bigint      NOT NULL,
    price      numeric     NOT NULL,
    quantity   numeric     NOT NULL,
    side       text        NOT NULL CHECK (side IN ('buy', 'sell')),
    ts_event   timestamptz NOT NULL,
    ts_recv    timestamptz NOT NULL,
    backfilled boolean     NOT NULL DEFAULT false,
    -- The idempotence key. TimescaleDB needs the time column in every unique key (trade ids are unique
    -- per symbol anyway); putting it before trade_id lets this one index also serve the reads
    -- (latest trades of a symbol, trades since a time), so inserts maintain a single index.
    CONSTRAINT trades_key UNIQUE (exchange, symbol, ts_event, trade_id)
);

CREATE TABLE IF NOT EXISTS bars (
    exchange       text             NOT NULL,
    symbol         text             NOT NULL,
    timeframe      text             NOT NULL,
    open_time      timestamptz      NOT NULL,
    close_time     timestamptz      NOT NULL,
    open           numeric          NOT NULL,
    high           numeric          NOT NULL,
    low            numeric          NOT NULL,
    close          numeric          NOT NULL,
    volume         double precision NOT NULL,
    quote_volume   double precision NOT NULL,
    vwap           double precision NOT NULL,
    trade_count    integer          NOT NULL,
    buy_volume     double precision NOT NULL,
    sell_volume    double precision NOT NULL,
    first_trade_id bigint           NOT NULL,
    last_trade_id  bigint           NOT NULL,
    sma_20         double precision,
    ema_20         double precision,
    rsi_14         double precision,
    macd           double precision,
    macd_signal    double precision,
    macd_hist      double precision,
    bb_upper       double precision,
    bb_middle      double precision,
    bb_lower       double precision,
    atr_14         double precision,
    updated_at     timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT bars_key PRIMARY KEY (exchange, symbol, timeframe, open_time)
);

CREATE TABLE IF NOT EXISTS platform_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
