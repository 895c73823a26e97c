import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PostgresNIO
import Synchronization
import Testing
import TollgateCore
import TollgateRules
import TollgateStore
import TollgateTestSupport

/// One "instance": its own PostgreSQL pool and its own evaluator, as a separate process would have.
private final class Instance: Sendable {
    let client: PostgresClient
    let evaluator: BudgetEvaluator
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(location: DatabaseLocation, configuration: BudgetEvaluatorConfiguration) {
        client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: 4), backgroundLogger: Fixtures.logger)
        evaluator = Fixtures.evaluator(client, location: location, configuration: configuration)
    }

    func start() {
        let client = client
        let evaluator = evaluator
        tasks.withLock {
            $0.append(Task { await client.run() })
            $0.append(Task { try? await evaluator.run() })
        }
    }

    /// Stops the instance the way a process stopping does: the evaluator ends (its lock session closes with it), then
    /// the pool. (Cancelling the pool under a running evaluation can leave that evaluation waiting on the pool forever,
    /// which a real process, whose services stop in reverse order, never does.)
    func stop() async {
        let running = tasks.withLock { tasks in
            defer { tasks.removeAll() }
            return tasks
        }
        guard running.count == 2 else { return }
        running[1].cancel()
        await running[1].value
        running[0].cancel()
        await running[0].value
    }
}

private let fastFailover = BudgetEvaluatorConfiguration(
    sweepInterval: .seconds(30), leaderRetryInterval: .milliseconds(250), heartbeatInterval: .milliseconds(500))

private func lockHolderPID(_ client: PostgresClient) async throws -> Int? {
    try await client.query(
        """
        SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = \(fastFailover.leaderLockKey) AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """, logger: Fixtures.logger
    ).collect().first?.decode(Int.self)
}

@Suite(.freshDatabase, .timeLimit(.minutes(1))) struct LeaderFailoverTests {
    @Test func anotherInstanceTakesOverWhenTheLeaderDies() async throws {
        let location = try await TestDatabase.location()
        try await TestDatabase.withClient { admin in
            try await Fixtures.subscriptions([("team-a", "search", nil)], client: admin)
            try await PostgresBudgetRepository(client: admin).upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)

            let first = Instance(location: location, configuration: fastFailover)
            first.start()
            #expect(try await Fixtures.eventually { first.evaluator.isLeader })
            let second = Instance(location: location, configuration: fastFailover)
            second.start()
            try await Task.sleep(for: .seconds(1))
            #expect(!second.evaluator.isLeader)  // one evaluator at a time
            let firstPID = try #require(try await lockHolderPID(admin))

            // The leader's lock session is killed (a network cut): the lock is free at once and one instance leads again.
            let cut = ContinuousClock.now
            try await admin.query("SELECT pg_terminate_backend(\(firstPID)::integer)", logger: Fixtures.logger)
            #expect(try await Fixtures.eventually(timeout: .seconds(20)) { try await lockHolderPID(admin).map { $0 != firstPID } ?? false })
            #expect(try await Fixtures.eventually(timeout: .seconds(20)) { first.evaluator.isLeader != second.evaluator.isLeader })
            print("leader failover: a leader again \(ContinuousClock.now - cut) after the leader's session was killed")

            // Then the leading instance goes away; the other takes over and keeps enforcing.
            let (dead, survivor) = first.evaluator.isLeader ? (first, second) : (second, first)
            let died = ContinuousClock.now
            await dead.stop()
            #expect(try await Fixtures.eventually(timeout: .seconds(20)) { survivor.evaluator.isLeader })
            let takeover = ContinuousClock.now - died
            print("leader failover: survivor leads \(takeover) after the leader stopped")
            Fixtures.logger.info("Leader failover measured", metadata: ["failover.duration": "\(takeover)"])

            try await Fixtures.usage("team-a", tokens: 1000, at: Date(), client: admin)
            #expect(
                try await Fixtures.eventually(timeout: .seconds(20)) { try await Fixtures.state(of: "team-a", client: admin).state == "suspended" })
            await survivor.stop()
        }
    }
}

/// Measures, without asserting on time, how long after the crossing usage row commits the subscription is suspended
/// and the `subscription.suspended` webhook reaches a receiver. The figures are printed for the closing note.
@Suite(.freshDatabase, .timeLimit(.minutes(2))) struct EnforcementLagTests {
    @Test func measuresLagFromCrossingRowToSuspensionAndWebhook() async throws {
        let http = Fixtures.httpClient()
        let rounds = 20
        try await TestDatabase.withClient { client in
            let arrivals = Arrivals()
            try await Fixtures.withLiveServer(arrivals.router()) { port async throws in
                try await PostgresWebhookRepository(client: client).createEndpoint(
                    url: "http://127.0.0.1:\(port)/hook", secret: .generate(), eventTypes: [.suspended], logger: Fixtures.logger)
                for i in 0..<rounds {
                    try await Fixtures.subscriptions([("lag-\(i)", nil, nil)], client: client)
                    try await PostgresBudgetRepository(client: client).upsert(
                        BudgetDefinition(
                            name: "lag-\(i)", scope: .subscription(SubscriptionID("lag-\(i)")), limit: 100,
                            thresholds: [.init(percent: 100, action: .suspend)], forecast: false),
                        source: "config", logger: Fixtures.logger)
                }
                let evaluator = Fixtures.evaluator(client, location: try await TestDatabase.location())
                let dispatcher = Fixtures.dispatcher(
                    client, location: try await TestDatabase.location(), http: http, configuration: .init(targets: .init(allowLoopback: true)))
                var toSuspension: [Duration] = []
                var toWebhook: [Duration] = []
                try await Fixtures.running({
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await evaluator.run() }
                        group.addTask { try await dispatcher.run() }
                        try await group.waitForAll()
                    }
                }) { () async throws in
                    #expect(try await Fixtures.eventually { evaluator.isLeader })
                    try await Task.sleep(for: .milliseconds(300))  // first sweep done
                    for i in 0..<rounds {
                        try await Fixtures.usage("lag-\(i)", tokens: 100, at: Date(), client: client)
                        let committed = ContinuousClock.now
                        var suspendedAt: ContinuousClock.Instant?
                        #expect(
                            try await Fixtures.eventually(timeout: .seconds(15)) {
                                let row = try await client.query("SELECT state FROM subscriptions WHERE id = \("lag-\(i)")", logger: Fixtures.logger)
                                    .collect().first?.decode(String.self)
                                if row == "suspended" { suspendedAt = ContinuousClock.now }
                                return row == "suspended"
                            })
                        #expect(try await Fixtures.eventually(timeout: .seconds(15)) { arrivals.times.withLock { $0["lag-\(i)"] != nil } })
                        if let suspendedAt { toSuspension.append(suspendedAt - committed) }
                        if let arrived = arrivals.times.withLock({ $0["lag-\(i)"] }) { toWebhook.append(arrived - committed) }
                    }
                }
                func summary(_ values: [Duration]) -> String {
                    let sorted = values.sorted()
                    guard !sorted.isEmpty else { return "no samples" }
                    let ms = { (d: Duration) in
                        String(format: "%.1f ms", Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1000)
                    }
                    return
                        "median \(ms(sorted[sorted.count / 2])), p95 \(ms(sorted[min(sorted.count - 1, sorted.count * 95 / 100)])), max \(ms(sorted.last!)), n=\(sorted.count)"
                }
                if let slowest = toSuspension.indices.max(by: { toSuspension[$0] < toSuspension[$1] }) {
                    print("lag: slowest suspension was round \(slowest) of \(rounds)")
                }
                print("lag crossing row -> suspended: \(summary(toSuspension))")
                print("lag crossing row -> subscription.suspended webhook received: \(summary(toWebhook))")
                #expect(toSuspension.count == rounds)
                #expect(toWebhook.count == rounds)
            }
        }
        try await http.shutdown()
    }
}

/// When each `subscription.suspended` message reached the receiver, by subscription.
private final class Arrivals: Sendable {
    let times = Mutex<[String: ContinuousClock.Instant]>([:])

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
            if body.contains(#""type":"subscription.suspended""#),
                let range = body.range(of: #""subscription":"lag-\d+""#, options: .regularExpression)
            {
                let subscription = String(body[range].dropFirst(16).dropLast())
                self.times.withLock { $0[subscription] = ContinuousClock.now }
            }
            return Response(status: .noContent)
        }
        return router
    }
}
