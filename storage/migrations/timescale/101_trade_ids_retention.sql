-- trade_ids (postgres/006) is a plain table: the trades retention policy drops old trade chunks but not
-- their identities. A daily job deletes identities older than the trades retention, so that both keep the
-- same horizon (a trade id older than that is no longer stored either way). No job when trades
-- retention is disabled (cryptostock.trades_retain = '').
CREATE OR REPLACE PROCEDURE cryptostock_prune_trade_ids(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM trade_ids WHERE ts_event < now() - (config->>'drop_after')::interval;
END $$;

SELECT add_job('cryptostock_prune_trade_ids', INTERVAL '1 day',
               config => jsonb_build_object('drop_after', s.value))
FROM (SELECT coalesce(current_setting('cryptostock.trades_retain', true), '90 days') AS value) AS s
WHERE s.value <> '';
