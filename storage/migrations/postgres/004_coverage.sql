-- Coverage events (core.types.CoverageEvent): what collectors know about the completeness of each
-- symbol's trades (gaps found, repaired or abandoned; intervals that cannot be verified). Few rows, kept
-- for good: a bar's coverage and the API's /coverage are computed from them. Times are integer ns UTC,
-- exactly as the collector sent them. An event delivered twice is stored once (the key).
CREATE TABLE IF NOT EXISTS coverage (
    exchange       text   NOT NULL,
    symbol         text   NOT NULL,
    raw_symbol     text   NOT NULL,
    kind           text   NOT NULL CHECK (kind IN ('gap', 'repaired', 'abandoned', 'unverified')),
    start_ns       bigint NOT NULL,
    end_ns         bigint NOT NULL,
    recorded_ns    bigint NOT NULL,
    first_sequence bigint,
    last_sequence  bigint,
    trades         bigint,
    detail         text   NOT NULL DEFAULT '',
    CONSTRAINT coverage_key PRIMARY KEY (exchange, symbol, start_ns, kind, recorded_ns, end_ns)
);
