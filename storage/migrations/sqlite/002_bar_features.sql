-- ML features of each closed bar (core.types.Features), next to its indicators; null until warm.
ALTER TABLE bars ADD COLUMN log_return REAL;
ALTER TABLE bars ADD COLUMN realized_vol_20 REAL;
ALTER TABLE bars ADD COLUMN volume_zscore_20 REAL;
ALTER TABLE bars ADD COLUMN taker_buy_ratio REAL;
ALTER TABLE bars ADD COLUMN range_pct REAL;
ALTER TABLE bars ADD COLUMN vwap_deviation REAL;
ALTER TABLE bars ADD COLUMN rsi_norm REAL;
