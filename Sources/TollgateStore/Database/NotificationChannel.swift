// Cross-process contracts: the PostgreSQL LISTEN/NOTIFY channels every Tollgate instance shares.

/// A `NOTIFY` channel that Tollgate instances use to tell each other that something changed in PostgreSQL.
///
/// Both ends name the channel through this type: the Swift side that sends (`pg_notify`) or listens, and the migrations
/// whose triggers send (the SQL spells the same literal; `NotificationChannelTests` checks that every channel the
/// migrations notify on is one of these). A payload is a hint, never data to trust: listeners re-read the tables.
public enum NotificationChannel: String, Sendable, CaseIterable {
    /// Keys, subscriptions, products, backends or deployments changed (trigger in `sql/0001_catalog.sql`, one
    /// notification per statement). Payload: the changed table's name. Listener: every gateway's catalog cache.
    case catalog = "tollgate_catalog"
    /// Usage landed in the ledger (the usage writer, at commit). Payload: the number of events written, in decimal.
    /// Listener: the budget evaluator's leader, which evaluates at once instead of waiting for its interval.
    case usage = "tollgate_usage"
    /// Webhook messages were enqueued in the outbox (trigger in `sql/0201_webhooks.sql`). Payload: empty.
    /// Listener: every instance's webhook dispatcher.
    case webhooks = "tollgate_webhooks"

    /// The channel's name as PostgreSQL knows it.
    public var name: String { rawValue }
}
