import Foundation
import PostgresNIO
import Synchronization
import Testing
import TollgateStore
import TollgateStoreMemory
import TollgateTestSupport

/// A `LeaderElection` with the means to poke it from outside: send a notification, cut the leader's session.
protocol LeaderElectionFixture: Sendable {
    func candidate() -> any LeaderElection
    func notify(_ channel: NotificationChannel) async throws
    func cutLeaderSession(key: Int) async throws
}

struct MemoryLeaderFixture: LeaderElectionFixture {
    let election = InMemoryLeaderElection()
    func candidate() -> any LeaderElection { election }
    func notify(_ channel: NotificationChannel) async throws { election.post(channel) }
    func cutLeaderSession(key: Int) async throws { election.cutSession(key: key) }
}

struct PostgresLeaderFixture: LeaderElectionFixture {
    let client: PostgresClient
    let location: DatabaseLocation
    /// Each candidate its own session, as separate processes have.
    func candidate() -> any LeaderElection { PostgresLeaderElection(connection: location.connectionConfiguration(), logger: TestDatabase.logger) }
    func notify(_ channel: NotificationChannel) async throws {
        try await client.query("SELECT pg_notify(\(channel.name), '1')", logger: TestDatabase.logger)
    }
    func cutLeaderSession(key: Int) async throws {
        try await client.query(
            """
            SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = \(key) AND granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """, logger: TestDatabase.logger)
    }
}

/// What every `LeaderElection` promises.
enum LeaderElectionContract {
    static let key = 4_711

    /// Polls `condition` every 5 ms for up to 5 s.
    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)  // generous: CI runs every suite at once on two cores
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(25))
        }
        return try await condition()
    }

    static func oneLeaderAtATimeHearingItsChannel(_ fixture: some LeaderElectionFixture) async throws {
        let leading = Atomic<Bool>(false)
        let heard = Atomic<Int>(0)
        let release = AsyncStream<Void>.makeStream()
        let first = fixture.candidate()
        let leader = Task {
            try await first.lead(key: key, heartbeatInterval: .milliseconds(200), listeningTo: .usage, onChange: { heard.add(1, ordering: .relaxed) })
            {
                leading.store(true, ordering: .relaxed)
                for await _ in release.stream {}
            }
        }
        #expect(try await eventually { leading.load(ordering: .relaxed) })
        // Another candidate does not lead while the first does, and says so at once.
        let second = try await fixture.candidate().lead(key: key, heartbeatInterval: .milliseconds(200), listeningTo: .usage, onChange: {}) {
            Issue.record("a second leader ran")
        }
        #expect(second == false)
        try await fixture.notify(.usage)
        #expect(try await eventually { heard.load(ordering: .relaxed) >= 1 })
        try await fixture.notify(.webhooks)  // not its channel
        try await fixture.notify(.usage)
        #expect(try await eventually { heard.load(ordering: .relaxed) >= 2 })
        let heardCount = heard.load(ordering: .relaxed)
        #expect(heardCount == 2)

        // The leader's body returns: the lease is given back and the next candidate leads.
        release.continuation.finish()
        #expect(try await leader.value == true)
        let next = try await fixture.candidate().lead(key: key, heartbeatInterval: .milliseconds(200), listeningTo: .usage, onChange: {}) {}
        #expect(next == true)
    }

    static func aLostSessionEndsTheLeadAndFreesTheLease(_ fixture: some LeaderElectionFixture) async throws {
        let leading = Atomic<Bool>(false)
        let bodyCancelled = Atomic<Bool>(false)
        let leader = Task {
            try await fixture.candidate().lead(key: key, heartbeatInterval: .milliseconds(200), listeningTo: .usage, onChange: {}) {
                leading.store(true, ordering: .relaxed)
                do {
                    try await Task.sleep(for: .seconds(60))
                } catch {
                    bodyCancelled.store(true, ordering: .relaxed)
                    throw error
                }
            }
        }
        #expect(try await eventually { leading.load(ordering: .relaxed) })
        try await fixture.cutLeaderSession(key: key)
        await #expect(throws: (any Error).self) { try await leader.value }
        let cancelled = bodyCancelled.load(ordering: .relaxed)
        #expect(cancelled)
        let next = try await fixture.candidate().lead(key: key, heartbeatInterval: .milliseconds(200), listeningTo: .usage, onChange: {}) {}
        #expect(next == true)
    }
}

@Suite struct InMemoryLeaderElectionContractTests {
    @Test func oneLeaderAtATimeHearingItsChannel() async throws {
        try await LeaderElectionContract.oneLeaderAtATimeHearingItsChannel(MemoryLeaderFixture())
    }
    @Test func aLostSessionEndsTheLeadAndFreesTheLease() async throws {
        try await LeaderElectionContract.aLostSessionEndsTheLeadAndFreesTheLease(MemoryLeaderFixture())
    }
}

@Suite(.freshDatabasePerTest, .timeLimit(.minutes(1))) struct PostgresLeaderElectionContractTests {
    @Test func oneLeaderAtATimeHearingItsChannel() async throws {
        let location = try await TestDatabase.location()
        try await TestDatabase.withClient { client in
            try await LeaderElectionContract.oneLeaderAtATimeHearingItsChannel(PostgresLeaderFixture(client: client, location: location))
        }
    }
    @Test func aLostSessionEndsTheLeadAndFreesTheLease() async throws {
        let location = try await TestDatabase.location()
        try await TestDatabase.withClient { client in
            try await LeaderElectionContract.aLostSessionEndsTheLeadAndFreesTheLease(PostgresLeaderFixture(client: client, location: location))
        }
    }
}
