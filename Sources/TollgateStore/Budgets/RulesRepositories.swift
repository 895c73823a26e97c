import PostgresNIO

/// The repositories the rules engine and its administration work on, handed around together.
public struct RulesRepositories: Sendable {
    public var budgets: any BudgetRepository
    public var subscriptions: any SubscriptionStateRepository
    public var webhooks: any WebhookRepository

    public init(budgets: any BudgetRepository, subscriptions: any SubscriptionStateRepository, webhooks: any WebhookRepository) {
        self.budgets = budgets
        self.subscriptions = subscriptions
        self.webhooks = webhooks
    }

    /// The PostgreSQL repositories on `client` (a short-lived command's pool, or a real-PostgreSQL test's).
    package init(client: PostgresClient) {
        self.init(
            budgets: PostgresBudgetRepository(client: client), subscriptions: PostgresSubscriptionStateRepository(client: client),
            webhooks: PostgresWebhookRepository(client: client))
    }
}

extension PostgresDatabase {
    /// The rules engine's repositories on this database.
    public var rules: RulesRepositories { RulesRepositories(client: client) }
}
