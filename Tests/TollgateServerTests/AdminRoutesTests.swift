import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing
import TollgateCore
import TollgateRules
import TollgateServer
import TollgateStore
import TollgateStoreMemory

/// The admin API's routes on the in-memory repositories (no PostgreSQL): authentication, error bodies, keys, apply,
/// prices, commitments frozen by a closed month, reports and usage summaries. The same routes run end to end on
/// PostgreSQL in the rules, ingest and e2e suites.
struct AdminRoutesTests {
    static let token = "admin-routes-test-token-0123"
    static let auth: HTTPFields = [.authorization: "Bearer \(token)"]
    static let document = PolicyDocument(
        backends: [BackendSpec(name: "mock", kind: .mock, deployments: [DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini")])],
        products: [ProductSpec(name: "standard")],
        subscriptions: [SubscriptionSpec(id: "sub-a", displayName: "A", team: "search", costCenter: "CC-1", product: "standard")])

    final class Fixture: Sendable {
        let store: InMemoryStore
        /// How often the admin API asked for the catalog cache to be reloaded.
        let refreshes = Atomic<Int>(0)

        init(store: InMemoryStore = InMemoryStore()) async throws {
            self.store = store
            try await store.catalog.apply(AdminRoutesTests.document, logger: Logger(label: "test"))
        }

        func application() -> some ApplicationProtocol {
            let router = Router(context: BasicRequestContext.self)
            AdminAPI(
                token: Secret(AdminRoutesTests.token), repositories: store.repositories,
                suspender: TollgateSuspender(subscriptions: store.rules.subscriptionStates),
                refreshCatalog: { self.refreshes.add(1, ordering: .relaxed) }, now: { Date(iso8601: "2026-11-15T12:00:00Z")! }
            ).register(on: router)
            return Application(router: router)
        }
    }

    /// The admin error body's `code`; nil when the body is not `{"error": {"code", "message"}}`.
    static func errorCode(_ response: TestResponse) -> String? {
        let body = (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: [String: String]]
        return body?["error"]?["code"]
    }

    @Test func everyRouteNeedsTheToken() async throws {
        let fixture = try await Fixture()
        try await fixture.application().test(.router) { client in
            for (uri, method) in [("/admin/v1/subscriptions", HTTPRequest.Method.get), ("/admin/v1/keys", .get), ("/admin/v1/apply", .post)] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .unauthorized)
                    #expect(Self.errorCode(response) == "unauthorized")
                }
                try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer \(Self.token)x"]) { response in
                    #expect(response.status == .unauthorized)
                }
            }
        }
    }

    @Test func keysAreCreatedListedAndRevokedAndEachChangeRefreshesTheCatalog() async throws {
        let fixture = try await Fixture()
        try await fixture.application().test(.router) { client in
            var prefix = ""
            try await client.execute(uri: "/admin/v1/subscriptions/sub-a/keys", method: .post, headers: Self.auth) { response in
                #expect(response.status == .created)
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                let key = try #require(body?["key"] as? String)
                prefix = try #require((body?["info"] as? [String: Any])?["prefix"] as? String)
                #expect(key.hasPrefix(prefix))
            }
            #expect(fixture.refreshes.load(ordering: .relaxed) == 1)
            try await client.execute(uri: "/admin/v1/subscriptions/sub-a/keys", method: .post, headers: Self.auth) { response in
                #expect(response.status == .conflict)
                #expect(Self.errorCode(response) == "slot_taken")
            }
            try await client.execute(uri: "/admin/v1/subscriptions/nobody/keys", method: .post, headers: Self.auth) { response in
                #expect(response.status == .notFound)
                #expect(Self.errorCode(response) == "not_found")
            }
            try await client.execute(uri: "/admin/v1/keys?subscription=sub-a", method: .get, headers: Self.auth) { response in
                let keys = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [[String: Any]]
                #expect(keys?.map { $0["prefix"] as? String } == [prefix])
            }
            try await client.execute(uri: "/admin/v1/keys/\(prefix)", method: .delete, headers: Self.auth) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/admin/v1/keys/\(prefix)", method: .delete, headers: Self.auth) { response in
                #expect(response.status == .notFound)
            }
            // Failed calls and reads do not refresh; the create and the revoke did.
            #expect(fixture.refreshes.load(ordering: .relaxed) == 2)
            try await client.execute(uri: "/admin/v1/keys?subscription=sub-a", method: .get, headers: Self.auth) { response in
                #expect(String(buffer: response.body) == "[]")
            }
        }
    }

    @Test func subscriptionsAreListedAndAMissingOneIsNotFound() async throws {
        let fixture = try await Fixture()
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/admin/v1/subscriptions/sub-a", method: .get, headers: Self.auth) { response in
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect(body?["team"] as? String == "search")
                #expect(body?["cost_center"] as? String == "CC-1")
                #expect(body?["state"] as? String == "active")
            }
            try await client.execute(uri: "/admin/v1/subscriptions/ghost", method: .get, headers: Self.auth) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("ghost"))
            }
        }
    }

    @Test func aSubscriptionShowsItsAllowedModelsAndOmitsThemWhenItHasNone() async throws {
        var document = Self.document
        document.subscriptions[0].allowedModels = ["gpt-4o*"]
        document.subscriptions.append(SubscriptionSpec(id: "sub-b", product: "standard"))
        let fixture = try await Fixture()
        try await fixture.store.catalog.apply(document, logger: Logger(label: "test"))
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/admin/v1/subscriptions/sub-a", method: .get, headers: Self.auth) { response in
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect(body?["allowed_models"] as? [String] == ["gpt-4o*"])
            }
            try await client.execute(uri: "/admin/v1/subscriptions/sub-b", method: .get, headers: Self.auth) { response in
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect(body?["id"] as? String == "sub-b")
                #expect(body?.keys.contains("allowed_models") == false)
            }
        }
    }

    @Test func applyDryRunChangesNothingAndABadFileNamesItsLine() async throws {
        let fixture = try await Fixture()
        let yaml = """
            backends:
              - name: mock
                kind: mock
                models: [gpt-4o-mini]
            subscriptions:
              - id: sub-a
                team: search
              - id: sub-new
                team: billing
            budgets:
              - name: billing-monthly
                scope: team
                target: billing
                limit: 1000000
                thresholds:
                  - { percent: 100, action: alert }
            """
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/admin/v1/apply?dry_run=true", method: .post, headers: Self.auth, body: ByteBuffer(string: yaml)) { response in
                #expect(response.status == .ok)
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect(body?["applied"] as? Bool == false)
                #expect((body?["changes"] as? [String])?.contains("+ subscription sub-new") == true)
                #expect((body?["changes"] as? [String])?.contains("+ budget billing-monthly") == true)
            }
            #expect(try await fixture.store.catalog.snapshot(logger: Logger(label: "test")).subscriptions["sub-new"] == nil)
            #expect(try await fixture.store.rules.budgets.all(logger: Logger(label: "test")).isEmpty)
            try await client.execute(uri: "/admin/v1/apply", method: .post, headers: Self.auth, body: ByteBuffer(string: yaml)) { response in
                #expect(response.status == .ok)
            }
            #expect(try await fixture.store.catalog.snapshot(logger: Logger(label: "test")).subscriptions["sub-new"]?.team == "billing")
            #expect(try await fixture.store.rules.budgets.all(logger: Logger(label: "test")).map(\.name) == ["billing-monthly"])
            let bad = "subscriptions:\n  - id: sub-x\n    state: sleeping\n"
            try await client.execute(uri: "/admin/v1/apply", method: .post, headers: Self.auth, body: ByteBuffer(string: bad)) { response in
                #expect(response.status == .unprocessableContent)
                #expect(Self.errorCode(response) == "invalid_configuration")
                #expect(String(buffer: response.body).contains("request body:3"))
            }
        }
    }

    @Test func pricesImportAllOrNothingAndConflictsAreNamed() async throws {
        let fixture = try await Fixture()
        let csv = "model,currency,effective_from,input_per_1m,output_per_1m\ngpt-4o-mini,USD,2026-10-01T00:00:00Z,0.15,0.60\n"
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/admin/v1/prices?price_list=list-a", method: .post, headers: Self.auth, body: ByteBuffer(string: csv)) {
                response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"added\":1"))
            }
            let changed = csv.replacingOccurrences(of: "0.60", with: "0.70")
            try await client.execute(uri: "/admin/v1/prices", method: .post, headers: Self.auth, body: ByteBuffer(string: changed)) { response in
                #expect(response.status == .conflict)
                #expect(Self.errorCode(response) == "price_conflict")
            }
            try await client.execute(uri: "/admin/v1/prices", method: .post, headers: Self.auth, body: ByteBuffer(string: "model\nx\n")) { response in
                #expect(response.status == .unprocessableContent)
                #expect(Self.errorCode(response) == "invalid_price_list")
            }
            try await client.execute(uri: "/admin/v1/prices", method: .get, headers: Self.auth) { response in
                let lines = String(buffer: response.body).split(whereSeparator: \.isNewline)
                #expect(lines.count == 2)
                #expect(lines.last?.contains("0.6") == true)
                #expect(lines.last?.contains("list-a") == true)
            }
        }
    }

    @Test func applyImportsTheShippedPriceCatalogsOnceAndSkipsVersionsInsideClosedMonths() async throws {
        let fixture = try await Fixture()
        let logger = Logger(label: "test")
        // The books are closed through August 2025: the catalog's earlier versions can no longer be stored.
        var month = BillingPeriod.month("2024-01")!
        while month.start < Date(iso8601: "2025-09-01T00:00:00Z")! {
            try await fixture.store.periods.close(month, closedBy: "test", now: Date(iso8601: "2026-11-02T00:00:00Z")!, logger: logger)
            month = BillingPeriod.containing(month.end, kind: .monthly)
        }
        let shipped = try PriceCatalog.load(named: "openai")
        let open = shipped.prices.filter { $0.effectiveFrom >= Date(iso8601: "2025-09-01T00:00:00Z")! }
        let yaml = "backends:\n  - name: mock\n    kind: mock\n    models: [gpt-4o-mini]\nprice_catalogs: [openai]\n"
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/admin/v1/apply?dry_run=true", method: .post, headers: Self.auth, body: ByteBuffer(string: yaml)) { response in
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                let changes = body?["changes"] as? [String] ?? []
                #expect(changes.contains("+ price catalog openai (\(open.count) version(s))") == !open.isEmpty, "\(changes)")
            }
            for _ in 0..<2 {
                try await client.execute(uri: "/admin/v1/apply", method: .post, headers: Self.auth, body: ByteBuffer(string: yaml)) { response in
                    #expect(response.status == .ok)
                }
            }
            try await client.execute(uri: "/admin/v1/apply?dry_run=true", method: .post, headers: Self.auth, body: ByteBuffer(string: yaml)) { response in
                #expect(!String(buffer: response.body).contains("price catalog"))
            }
        }
        let stored = try await fixture.store.prices.list(logger: logger)
        #expect(stored.count == open.count)
        #expect(stored.allSatisfy { $0.priceList == shipped.priceList && $0.priceList.hasPrefix("catalog:openai@") })
    }

    @Test func applyImportsEveryVersionOfAShippedCatalogOnAnOpenBook() async throws {
        let fixture = try await Fixture()
        let shipped = try PriceCatalog.load(named: "azure-openai")
        try await fixture.application().test(.router) { client in
            let yaml = "backends:\n  - name: mock\n    kind: mock\n    models: [gpt-4o-mini]\nprice_catalogs: [azure-openai]\n"
            try await client.execute(uri: "/admin/v1/apply", method: .post, headers: Self.auth, body: ByteBuffer(string: yaml)) { response in
                #expect(response.status == .ok)
            }
        }
        #expect(try await fixture.store.prices.list(logger: Logger(label: "test")).count == shipped.prices.count)
        #expect(shipped.prices.count > 10)
    }

    @Test func aClosedMonthsCommitmentIsAConflictWithItsCodeNotAServerError() async throws {
        let fixture = try await Fixture()
        try await fixture.store.periods.close(BillingPeriod.month("2026-10")!, closedBy: "test", now: Date(iso8601: "2026-11-02T00:00:00Z")!, logger: Logger(label: "test"))
        let yaml = """
            backends:
              - name: mock
                kind: mock
                models: [gpt-4o-mini]
            commitments:
              - backend: mock
                effective_from: 2026-10
                monthly_amount: 100
                currency: USD
            """
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/admin/v1/apply", method: .post, headers: Self.auth, body: ByteBuffer(string: yaml)) { response in
                #expect(response.status == .conflict)
                #expect(Self.errorCode(response) == "period_closed")
                #expect(String(buffer: response.body).contains("closed billing period"))
            }
        }
    }

    @Test func usageSummaryDefaultsToTheCurrentMonthAndFiltersBySubscription() async throws {
        let usage = InMemoryUsage()
        func row(_ subscription: String, _ prompt: Int) -> UsageSummary {
            UsageSummary(
                subscriptionID: subscription, model: "gpt-4o-mini", usageSource: "reported", requests: 1, promptTokens: prompt, completionTokens: 1,
                totalTokens: prompt + 1, cachedTokens: 0, reasoningTokens: 0)
        }
        usage.add(row("sub-a", 10), hour: Date(iso8601: "2026-10-31T23:00:00Z")!)  // last month: outside the default span
        usage.add(row("sub-a", 20), hour: Date(iso8601: "2026-11-01T00:00:00Z")!)
        usage.add(row("sub-a", 30), hour: Date(iso8601: "2026-11-14T08:00:00Z")!)
        usage.add(row("sub-b", 40), hour: Date(iso8601: "2026-11-14T08:00:00Z")!)
        let fixture = try await Fixture(store: InMemoryStore(usage: usage))
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/admin/v1/usage/summary", method: .get, headers: Self.auth) { response in
                let rows = try JSONDecoder().decode([UsageSummary].self, from: Data(response.body.readableBytesView))
                #expect(rows.map(\.subscriptionID) == ["sub-a", "sub-b"])
                #expect(rows.map(\.promptTokens) == [50, 40])
                #expect(rows.map(\.requests) == [2, 1])
            }
            try await client.execute(
                uri: "/admin/v1/usage/summary?subscription=sub-a&from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z", method: .get, headers: Self.auth
            ) { response in
                let rows = try JSONDecoder().decode([UsageSummary].self, from: Data(response.body.readableBytesView))
                #expect(rows.map(\.promptTokens) == [10])
            }
            try await client.execute(uri: "/admin/v1/usage/summary?from=yesterday", method: .get, headers: Self.auth) { response in
                #expect(response.status == .badRequest)
                #expect(Self.errorCode(response) == "invalid_request")
            }
        }
    }

    @Test func chargebackExportsTheFactsItIsGiven() async throws {
        let usage = InMemoryUsage()
        let november = BillingPeriod.month("2026-11")!
        usage.setFacts(
            [
                ChargebackFact(
                    chargeClass: .regular, subscription: "sub-a", product: "standard", team: "search", costCenter: "CC-1", backend: "mock",
                    deployment: "gpt-4o-mini", model: "gpt-4o-mini", priceID: 1, priceList: "list-a", currency: "USD", committed: false,
                    requests: 3, quantities: TokenQuantities(promptTokens: 1_000_000, cachedPromptTokens: 0, completionTokens: 500_000, reasoningTokens: 0),
                    totalTokens: 1_500_000, cost: Decimal(string: "0.4500000000")!, chargePeriodStart: november.start, chargePeriodEnd: november.end)
            ], for: november)
        let fixture = try await Fixture(store: InMemoryStore(usage: usage))
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/admin/v1/reports/chargeback?period=2026-11&group_by=team&format=csv", method: .get, headers: Self.auth) {
                response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/csv") == true)
                let text = String(buffer: response.body)
                #expect(text.contains("search"))
                #expect(text.contains("0.45"))
            }
            try await client.execute(uri: "/admin/v1/reports/chargeback?period=November", method: .get, headers: Self.auth) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("period=2026-10"))
            }
            try await client.execute(uri: "/admin/v1/reports/chargeback?period=2026-11&format=pdf", method: .get, headers: Self.auth) { response in
                #expect(response.status == .badRequest)
            }
        }
    }
}
