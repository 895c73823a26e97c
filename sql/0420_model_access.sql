-- 0420_model_access.sql: which deployment names a product's and a subscription's callers may use (issue 12, item 5).
--
-- Each list holds `*` patterns (`gpt-4o*`, `*-mini`, `*`) matched against the name a client sends as `model` or in an
-- Azure-style path. NULL is no restriction, so every existing row keeps allowing everything; with both lists set a
-- name must match both (TollgateCore `ModelAccess`). An empty list would allow nothing: `tollgate apply` refuses it,
-- and so does the CHECK.

ALTER TABLE products ADD COLUMN allowed_models text[] CHECK (cardinality(allowed_models) > 0 AND array_position(allowed_models, '') IS NULL);
ALTER TABLE subscriptions ADD COLUMN allowed_models text[] CHECK (cardinality(allowed_models) > 0 AND array_position(allowed_models, '') IS NULL);
