// TollgateCore: the pure domain — money, billing periods, prices and pricing, usage records, policy documents and their validation, budget math, webhook messages. Foundation only; no I/O.
