-- 0300_usage_hourly_hot_updates.sql: leave room on usage_hourly's pages so that adding a batch to an hour's row is a
-- HOT update (the counters it changes are in no index, so no index entry is written). Every usage batch updates
-- hundreds of these rows in the transaction that lands it; measured on PG 15 (bench/README.md), 900 such updates take
-- 5 ms instead of 16 ms. Pages written from now on keep half their space free; the table stays small (one row per hour
-- and subscription × model × backend …), so the space is cheap.
ALTER TABLE usage_hourly SET (fillfactor = 50);
