-- ML features of each closed bar (core.types.Features), next to its indicators. Nullable: a feature is
-- null until its window is warm, and bars stored before this migration have none.
ALTER TABLE bars
    ADD COLUMN IF NOT EXISTS log_return       double precision,
    ADD COLUMN IF NOT EXISTS realized_vol_20  double precision,
    ADD COLUMN IF NOT EXISTS volume_zscore_20 double precision,
    ADD COLUMN IF NOT EXISTS taker_buy_ratio  double precision,
    ADD COLUMN IF NOT EXISTS range_pct        double precision,
    ADD COLUMN IF NOT EXISTS vwap_deviation   double precision,
    ADD COLUMN IF NOT EXISTS rsi_norm         double precision;
