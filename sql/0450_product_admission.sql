-- 0450_product_admission.sql: what admission reserves and reports per product (issue 14, items 3 and 6).
--
-- `requests_per_minute` joins `tokens_per_minute` as a rolling one-minute limit. `default_max_tokens` is the completion
-- cap reserved for a request that sets none of `max_tokens`, `max_completion_tokens`, `max_output_tokens` (NULL
-- reserves the prompt only). The two header names are APIM's `remaining-tokens-header-name` and
-- `tokens-consumed-header-name`: NULL sends only the standard `x-ratelimit-*` headers. Every existing row keeps its
-- behaviour: the new columns are NULL.

ALTER TABLE products
    ADD COLUMN requests_per_minute integer CHECK (requests_per_minute > 0),
    ADD COLUMN default_max_tokens integer CHECK (default_max_tokens > 0),
    ADD COLUMN remaining_tokens_header_name text CHECK (remaining_tokens_header_name ~ '^[A-Za-z0-9-]{1,64}$'),
    ADD COLUMN tokens_consumed_header_name text CHECK (tokens_consumed_header_name ~ '^[A-Za-z0-9-]{1,64}$'),
    -- Shared minute limits (0460): lease each request's exact need instead of slices, and what to do when PostgreSQL
    -- cannot be reached for more.
    ADD COLUMN strict_limits boolean NOT NULL DEFAULT false,
    ADD COLUMN limits_failure_mode text NOT NULL DEFAULT 'open' CHECK (limits_failure_mode IN ('open', 'closed'));
