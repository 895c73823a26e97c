import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TollgateCore
import TollgateRules
import TollgateServer
import TollgateStore
import TollgateStoreMemory
import TollgateTestSupport

/// The admin routes of the rules engine, exercised on `rules` (PostgreSQL or in memory), whose catalog holds "team-a".
/// - Parameter state: reads team-a's state and actor afterwards.
func exerciseRulesAdminRoutes(
    rules: RulesRepositories, suspender: any SubscriptionSuspender, state: () async throws -> (state: String, actor: String)
) async throws {
    let router = Router()
    RulesAdmin.addRoutes(
        to: router.group("admin/v1"), rules: rules, suspender: suspender,
        actor: { _, _ in "admin:dana" })
    let app = Application(router: router)
    try await app.test(.router) { http in
        try await http.execute(
            uri: "/admin/v1/subscriptions/team-a", method: .patch, body: ByteBuffer(string: #"{"state":"suspended","reason":"maintenance"}"#)
        ) { response in
            #expect(response.status == .ok)
            let change = try JSONDecoder().decode(SubscriptionChange.self, from: Data(response.body.readableBytesView))
            #expect(change == SubscriptionChange(subscription: "team-a", state: "suspended", outcome: "changed", increasedBudgets: []))
        }
        try await http.execute(
            uri: "/admin/v1/subscriptions/ghost", method: .patch, body: ByteBuffer(string: #"{"state":"active","reason":"x"}"#)
        ) { response in
            #expect(response.status == .notFound)
        }
        try await http.execute(
            uri: "/admin/v1/subscriptions/team-a", method: .patch,
            body: ByteBuffer(string: #"{"state":"active","reason":"x","increase":"-5"}"#)
        ) { response in
            #expect(response.status == .badRequest)
        }
        try await http.execute(uri: "/admin/v1/subscriptions/team-a/events", method: .get) { response in
            #expect(response.status == .ok)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601  // Hummingbird's encoder writes RFC 3339 dates
            let entries = try decoder.decode([BudgetAuditEntry].self, from: Data(response.body.readableBytesView))
            #expect(entries.map { "\($0.event) \($0.actor) \($0.reason ?? "")" } == ["suspended admin:dana maintenance"])
        }
        try await http.execute(
            uri: "/admin/v1/webhooks/endpoints", method: .post,
            body: ByteBuffer(string: #"{"url":"https://hooks.example.com/t","event_types":["budget.exceeded"]}"#)
        ) { response in
            #expect(response.status == .ok)
            let created = try JSONDecoder().decode(CreatedWebhookEndpoint.self, from: Data(response.body.readableBytesView))
            #expect(created.secret.hasPrefix("whsec_"))
        }
        try await http.execute(
            uri: "/admin/v1/webhooks/endpoints", method: .post, body: ByteBuffer(string: #"{"url":"https://h.example","secret":"nope"}"#)
        ) { response in
            #expect(response.status == .badRequest)
        }
        try await http.execute(
            uri: "/admin/v1/budgets/team-a-daily", method: .put,
            body: ByteBuffer(
                string:
                    #"{"name":"team-a-daily","scope":"subscription","target":"team-a","period":"daily","limit":"5000","thresholds":[{"percent":100,"action":"suspend"}]}"#
            )
        ) { response in
            #expect(response.status == .noContent)
        }
        try await http.execute(
            uri: "/admin/v1/budgets/bad", method: .put,
            body: ByteBuffer(string: #"{"name":"bad","scope":"subscription","target":"nobody","limit":"-1","thresholds":[]}"#)
        ) { response in
            #expect(response.status == .badRequest)
            #expect(
                String(buffer: response.body).contains(
                    "target: unknown subscription 'nobody'; limit: must be positive; thresholds: a budget needs at least one threshold"))
        }
        try await http.execute(uri: "/admin/v1/budgets", method: .get) { response in
            #expect(response.status == .ok)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let statuses = try decoder.decode([BudgetStatus].self, from: Data(response.body.readableBytesView))
            #expect(statuses.map { "\($0.budget) \($0.currentUse)/\($0.effectiveLimit) \($0.state)" } == ["team-a-daily 0/5000 ok"])
        }
        try await http.execute(uri: "/admin/v1/webhooks/deliveries?endpoint=nope", method: .get) { response in
            #expect(response.status == .badRequest)
        }
        try await http.execute(uri: "/admin/v1/webhooks/deliveries", method: .get) { response in
            #expect(response.status == .ok)
            #expect(String(buffer: response.body) == "[]")
        }
    }
    let state = try await state()
    #expect(state.state == "suspended" && state.actor == "admin:dana")
}

@Suite(.freshDatabase) struct RulesAdminRouteTests {
    @Test func patchSubscriptionStateAndReadTheTrail() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", "search", nil)], client: client)
            try await exerciseRulesAdminRoutes(rules: RulesRepositories(client: client), suspender: Fixtures.suspender(client)) {
                let state = try await Fixtures.state(of: "team-a", client: client)
                return (state.state, state.actor)
            }
        }
    }

    @Test func cliOperationsDescribeWhatTheyDid() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-cli", nil, nil)], client: client)
            let suspended = try await RulesAdmin.suspend(
                rules: RulesRepositories(client: client), subscription: "team-cli", reason: "audit", actor: "admin:erin")
            #expect(RulesAdmin.describe(suspended) == "subscription team-cli: suspended (changed)")
            let resumed = try await RulesAdmin.resume(
                rules: RulesRepositories(client: client), subscription: "team-cli", reason: "done", actor: "admin:erin", increase: nil)
            #expect(RulesAdmin.describe(resumed) == "subscription team-cli: active (changed)")
            await #expect(throws: SubscriptionPatchError.invalidIncrease) {
                try await RulesAdmin.resume(
                    rules: RulesRepositories(client: client), subscription: "team-cli", reason: "x", actor: "admin:erin", increase: "lots")
            }
            let created = try await RulesAdmin.createWebhookEndpoint(
                webhooks: PostgresWebhookRepository(client: client), url: "https://hooks.example.com/tollgate", secret: nil,
                eventTypes: ["budget.exceeded"])
            #expect(created.secret.hasPrefix("whsec_"))
            await #expect(throws: RulesAdminError.unknownEventType("budget.exploded")) {
                try await RulesAdmin.createWebhookEndpoint(
                    webhooks: PostgresWebhookRepository(client: client), url: "https://x.example", secret: nil, eventTypes: ["budget.exploded"])
            }
        }
    }
}

@Suite(.freshDatabase) struct AdminBudgetSourceTests {
    @Test func applyLeavesAdminBudgetsAlone() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", nil, nil)], client: client)
            let store = PostgresBudgetRepository(client: client)
            try await store.put(
                BudgetSpec(name: "from-admin", scope: "all", limit: 10, thresholds: [.init(percent: 100, action: .alert)]), actor: "admin:gus",
                logger: Fixtures.logger)
            try await store.applyConfigured([Fixtures.hardBudget], logger: Fixtures.logger)
            #expect(try await store.all(logger: Fixtures.logger).map(\.name) == ["from-admin", "team-a-monthly"])
            try await store.applyConfigured([], logger: Fixtures.logger)
            #expect(try await store.all(logger: Fixtures.logger).map(\.name) == ["from-admin"])
        }
    }
}

/// The same routes on the in-memory repositories: no PostgreSQL.
@Suite struct InMemoryRulesAdminRouteTests {
    @Test func patchSubscriptionStateAndReadTheTrail() async throws {
        let store = InMemoryRulesStore()
        store.addSubscription("team-a", team: "search")
        try await exerciseRulesAdminRoutes(rules: store.rules, suspender: TollgateSuspender(subscriptions: store.subscriptionStates)) {
            let state = try #require(store.subscriptionState("team-a"))
            return (state.state, state.actor)
        }
    }
}
