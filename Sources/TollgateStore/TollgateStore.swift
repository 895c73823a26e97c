// TollgateStore: the one persistence boundary — repository protocols and their PostgreSQL implementations, the pool (Database/), migrations (Schema/), the embedded cluster.
//
// Catalog/ backends, products, subscriptions, keys · Usage/ the ledger, its writer's SQL, partitions, retention, ingest,
// quota usage · Pricing/ prices, commitments, periods, chargeback facts · Budgets/ Subscriptions/ Webhooks/ the rules
// engine's aggregates · Leadership/ leader election · Database/ PostgresDatabase, LISTEN/NOTIFY, the embedded cluster.
