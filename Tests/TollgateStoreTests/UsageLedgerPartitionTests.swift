import Foundation
import NIOCore
import PostgresNIO
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateStore

/// The ledger is partitioned by UTC month (sql/0400); its idempotency key, `usage_request_ids`, spans the partitions.
/// A replayed spool or a re-sent ingest batch lands once, even when a replayed row's time puts it in another month.
@Suite(.freshDatabase, .serialized) struct UsageLedgerPartitionTests {
    static let logger = TestDatabase.logger
    static let lastInstantOfNovember = Date(iso8601: "2026-11-30T23:59:59.999Z")!
    static let december = Date(iso8601: "2026-12-01T00:00:00Z")!

    static func event(_ id: String, at start: Date, subscription: String, prompt: Int = 10) -> UsageEvent {
        UsageEvent(
            requestID: UUID(uuidString: id)!, startedAt: start, endedAt: start, subscription: SubscriptionID(subscription), backend: "openai",
            model: "gpt-4o", route: "chat.completions", httpStatus: 200, streamed: false,
            usage: TokenUsage(promptTokens: prompt, completionTokens: 1), usageSource: .reported)
    }

    /// The same event (same request id) at another time.
    static func moved(_ event: UsageEvent, to instant: Date) -> UsageEvent {
        var moved = event
        moved.startedAt = instant
        moved.endedAt = instant
        return moved
    }

    static func count(_ client: PostgresClient, _ sql: String) async throws -> Int {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect().first?.decode(Int.self) ?? -1
    }

    /// Rows, rollup requests and prompt tokens of one subscription, and its rows per partition.
    static func state(_ client: PostgresClient, _ subscription: String) async throws -> (rows: Int, requests: Int, prompt: Int, partitions: [String]) {
        let rows = try await count(client, "SELECT count(*)::int FROM usage_events WHERE subscription_id = '\(subscription)'")
        let requests = try await count(client, "SELECT coalesce(sum(requests), 0)::int FROM usage_hourly WHERE subscription_id = '\(subscription)'")
        let prompt = try await count(client, "SELECT coalesce(sum(prompt_tokens), 0)::int FROM usage_daily_rollup WHERE subscription_id = '\(subscription)'")
        var partitions: [String] = []
        let query = PostgresQuery(
            unsafeSQL: "SELECT tableoid::regclass::text FROM usage_events WHERE subscription_id = '\(subscription)' ORDER BY started_at")
        for try await name in try await client.query(query, logger: logger).decode(String.self) { partitions.append(name) }
        return (rows, requests, prompt, partitions)
    }

    @Test func aSpoolReplayedAcrossAMonthBoundaryLandsOnce() async throws {
        try await TestDatabase.withClient { client in
            let ledger = PostgresUsageLedger(client: client)
            _ = try await ledger.createPartitions(now: Self.lastInstantOfNovember, monthsAhead: 1, logger: Self.logger)
            let store = UsageStore(client: client)
            let november = Self.event("019ad6f0-0000-7000-8000-000000000001", at: Self.lastInstantOfNovember, subscription: "spool")
            let december = Self.event("019ad6f0-0000-7000-8000-000000000002", at: Self.december, subscription: "spool")
            // What the spool holds and replays: the COPY lines.
            let spool = ByteBuffer(string: UsageStore.copyLine(for: november) + UsageStore.copyLine(for: december))
            #expect(try await store.insert(copyText: [spool], logger: Self.logger) == 2)
            #expect(try await store.insert(copyText: [spool], logger: Self.logger) == 0)
            // The same request ids with their times swapped: each would go to the other month's partition.
            let movedNovember = Self.moved(november, to: Self.december)
            let movedDecember = Self.moved(december, to: Self.lastInstantOfNovember)
            let rewritten = ByteBuffer(string: UsageStore.copyLine(for: movedNovember) + UsageStore.copyLine(for: movedDecember))
            #expect(try await store.insert(copyText: [rewritten], logger: Self.logger) == 0)
            // A replay mixed with one new event (the general path): only the new one lands.
            let third = Self.event("019ad6f0-0000-7000-8000-000000000003", at: Self.december, subscription: "spool")
            #expect(try await store.insert([movedNovember, third, movedDecember], logger: Self.logger) == 1)

            let state = try await Self.state(client, "spool")
            #expect(state.rows == 3)
            #expect(state.requests == 3)
            #expect(state.prompt == 30)
            #expect(state.partitions == ["usage_events_2026_11", "usage_events_2026_12", "usage_events_2026_12"])
            #expect(try await Self.count(client, "SELECT count(*)::int FROM usage_request_ids WHERE request_id::text LIKE '019ad6f0-%'") == 3)
        }
    }

    @Test func anIngestBatchResentAcrossAMonthBoundaryWithStringIDsLandsOnce() async throws {
        try await TestDatabase.withClient { client in
            try await CatalogStore(client: client).apply(
                PolicyDocument(backends: [], products: [], subscriptions: [SubscriptionSpec(id: "ingest-prod", team: "search")]),
                logger: Self.logger)
            let now = Date(iso8601: "2026-11-05T09:00:00Z")!
            _ = try await PostgresUsageLedger(client: client).createPartitions(now: now, monthsAhead: 0, logger: Self.logger)  // November
            func batch(_ firstAt: String) -> Data {
                Data(
                    """
                    {"id":"evt-1","subscription":"ingest-prod","model":"gpt-4o","timestamp":"\(firstAt)","prompt_tokens":100,"completion_tokens":1}
                    {"id":"urn:cloudevents:apim/7f3a","subscription":"ingest-prod","model":"gpt-4o","timestamp":"2026-11-01T00:00:00Z","prompt_tokens":200,"completion_tokens":1}
                    """.utf8)
            }
            func ingest(_ body: Data, source: String = "apim-east") async throws -> IngestResult {
                try await ExternalUsageIngest.ingest(
                    body: body, contentType: "application/x-ndjson", source: source, now: now, client: client, logger: Self.logger)
            }
            let first = try await ingest(batch("2026-10-31T23:59:59Z"))
            #expect(first.accepted == 2 && first.inserted == 2 && first.rejected == 0)
            let resent = try await ingest(batch("2026-10-31T23:59:59Z"))
            #expect(resent.inserted == 0 && resent.duplicates == 2)
            // Re-sent with the first event's time corrected into November: still the same event.
            let corrected = try await ingest(batch("2026-11-01T00:00:01Z"))
            #expect(corrected.inserted == 0 && corrected.duplicates == 2)
            // Event ids are unique per sender only: another gateway's evt-1 is another event.
            let other = try await ingest(batch("2026-10-31T23:59:59Z"), source: "apim-west")
            #expect(other.inserted == 2)

            let state = try await Self.state(client, "ingest-prod")
            #expect(state.rows == 4)
            #expect(state.requests == 4)
            #expect(state.prompt == 600)
            // October had no partition yet: its rows wait in the default one until the maintainer makes it.
            #expect(state.partitions == ["usage_events_default", "usage_events_default", "usage_events_2026_11", "usage_events_2026_11"])
            #expect(try await PostgresUsageLedger(client: client).createPartitions(now: now, monthsAhead: 0, logger: Self.logger).contains("usage_events_2026_10"))
            #expect(try await Self.state(client, "ingest-prod").partitions.prefix(2) == ["usage_events_2026_10", "usage_events_2026_10"])
            let stored = try await Self.count(
                client, "SELECT count(*)::int FROM usage_events WHERE request_id = '19f8f953-4737-5d36-a6cb-8fb2ad88d8fd' AND source = 'apim-east'")
            #expect(stored == 1)
        }
    }

    /// The gateway's rows: request ids minted as UUIDv7 at the request's start (sql/0410's self-located rows).
    static func gatewayEvent(at start: Date, subscription: String, prompt: Int = 10) -> UsageEvent {
        event(UUIDv7.make(at: start).uuidString, at: start, subscription: subscription, prompt: prompt)
    }

    static func claims(_ client: PostgresClient, _ events: [UsageEvent]) async throws -> Int {
        let ids = events.map { "'\($0.requestID.uuidString)'" }.joined(separator: ",")
        return try await count(client, "SELECT count(*)::int FROM usage_request_ids WHERE request_id IN (\(ids))")
    }

    @Test func selfLocatedRowsReplayedAcrossAMonthBoundaryLandOnceAndClaimNothing() async throws {
        try await TestDatabase.withClient { client in
            _ = try await PostgresUsageLedger(client: client).createPartitions(now: Self.lastInstantOfNovember, monthsAhead: 1, logger: Self.logger)
            let store = UsageStore(client: client)
            let november = Self.gatewayEvent(at: Self.lastInstantOfNovember, subscription: "gateway-spool")
            let december = Self.gatewayEvent(at: Self.december, subscription: "gateway-spool")
            let spool = ByteBuffer(string: UsageStore.copyLine(for: november) + UsageStore.copyLine(for: december))
            #expect(HourlyRollup(lines: [spool])?.selfLocated == true)  // the fast path takes it
            #expect(try await store.insert(copyText: [spool], logger: Self.logger) == 2)
            #expect(try await store.insert(copyText: [spool], logger: Self.logger) == 0)
            // Each partition's unique index vouches for its ids: nothing claimed.
            #expect(try await Self.claims(client, [november, december]) == 0)

            // Rewritten into the other month: no longer self-located, checked against every partition, so still once.
            let movedNovember = Self.moved(november, to: Self.december)
            let movedDecember = Self.moved(december, to: Self.lastInstantOfNovember)
            let rewritten = ByteBuffer(string: UsageStore.copyLine(for: movedNovember) + UsageStore.copyLine(for: movedDecember))
            #expect(HourlyRollup(lines: [rewritten])?.selfLocated == false)
            #expect(try await store.insert(copyText: [rewritten], logger: Self.logger) == 0)
            // A replay in one batch with a new gateway row and a rewritten one: only the new one lands.
            let third = Self.gatewayEvent(at: Self.december.addingTimeInterval(1), subscription: "gateway-spool")
            #expect(try await store.insert([november, third, movedDecember], logger: Self.logger) == 1)

            let state = try await Self.state(client, "gateway-spool")
            #expect(state.rows == 3)
            #expect(state.requests == 3)
            #expect(state.prompt == 30)
            #expect(state.partitions == ["usage_events_2026_11", "usage_events_2026_12", "usage_events_2026_12"])
            #expect(try await Self.claims(client, [november, december, third]) == 0)
        }
    }

    @Test func aSelfLocatedRowMeetsTheClaimOfItsIDInAnotherMonth() async throws {
        try await TestDatabase.withClient { client in
            _ = try await PostgresUsageLedger(client: client).createPartitions(now: Self.lastInstantOfNovember, monthsAhead: 1, logger: Self.logger)
            let store = UsageStore(client: client)
            // Minted in December, first stored with a November time: not self-located, so its id is claimed.
            let selfLocated = Self.gatewayEvent(at: Self.december, subscription: "claimed")
            let elsewhere = Self.moved(selfLocated, to: Self.lastInstantOfNovember)
            #expect(try await store.insert([elsewhere], logger: Self.logger) == 1)
            #expect(try await Self.claims(client, [elsewhere]) == 1)
            // The self-located row of the same id goes to December's partition by the fast path, where no row of the id is:
            // the claim stops it.
            let line = ByteBuffer(string: UsageStore.copyLine(for: selfLocated))
            #expect(HourlyRollup(lines: [line])?.selfLocated == true)
            #expect(try await store.insert(copyText: [line], logger: Self.logger) == 0)
            let state = try await Self.state(client, "claimed")
            #expect(state.rows == 1)
            #expect(state.requests == 1)
            #expect(state.partitions == ["usage_events_2026_11"])
        }
    }

    /// sql/0410's tollgate_usage_self_located and HourlyRollup decide alike, to the millisecond at a month's edge.
    @Test func postgreSQLAndTheFastPathAgreeOnWhatIsSelfLocated() async throws {
        try await TestDatabase.withClient { client in
            let edge = Self.lastInstantOfNovember  // 23:59:59.999
            let cases: [(id: UUID, started: Date, selfLocated: Bool)] = [
                (UUIDv7.make(at: edge), edge, true),
                (UUIDv7.make(at: edge), Self.december, false),  // minted a millisecond before December started
                (UUIDv7.make(at: Self.december), Self.december, true),
                (UUIDv7.make(at: Self.december), edge, false),
                (UUID(uuidString: "1b4e28ba-2fa1-41d2-883f-0016d3cca427")!, Self.december, false),  // a UUIDv4
                (ExternalUsageIngest.requestID(forEventID: "evt-1", source: "apim-east"), Self.december, false),  // a UUIDv5
            ]
            for (id, started, expected) in cases {
                let sql = "SELECT tollgate_usage_self_located('\(id.uuidString)'::uuid, '\(UsageStore.copyLine(for: Self.event(id.uuidString, at: started, subscription: "x")).split(separator: "\t")[2])'::timestamptz)"
                let inPostgreSQL = try await client.query(PostgresQuery(unsafeSQL: sql), logger: Self.logger).collect().first?.decode(Bool.self)
                #expect(inPostgreSQL == expected, "\(id) at \(started)")
                let line = ByteBuffer(string: UsageStore.copyLine(for: Self.event(id.uuidString, at: started, subscription: "x")))
                #expect(HourlyRollup(lines: [line])?.selfLocated == expected, "\(id) at \(started)")
            }
        }
    }

    @Test func aRowOfAMonthWithoutPartitionWaitsInTheDefaultOneAndMovesWhenItIsMade() async throws {
        try await TestDatabase.withClient { client in
            let june2031 = Date(iso8601: "2031-06-10T12:00:00Z")!
            let row = Self.event("019ad6f0-0000-7000-8000-0000000000f1", at: june2031, subscription: "far-future")
            #expect(try await UsageStore(client: client).insert([row], logger: Self.logger) == 1)
            #expect(try await Self.state(client, "far-future").partitions == ["usage_events_default"])
            let ledger = PostgresUsageLedger(client: client)
            let created = try await ledger.createPartitions(now: june2031, monthsAhead: 2, logger: Self.logger)
            #expect(created == ["usage_events_2031_06", "usage_events_2031_07", "usage_events_2031_08"])
            #expect(try await ledger.createPartitions(now: june2031, monthsAhead: 2, logger: Self.logger).isEmpty)
            #expect(try await Self.state(client, "far-future").partitions == ["usage_events_2031_06"])
            #expect(try await Self.count(client, "SELECT count(*)::int FROM usage_events_default WHERE subscription_id = 'far-future'") == 0)
        }
    }
}

/// Retention turns a dropped month's ids into claims (sql/0410). Its own database: it closes and drops October.
@Suite(.freshDatabase) struct UsageLedgerRetentionClaimTests {
    @Test func theIDsOfAMonthRetentionDroppedStayKnown() async throws {
        try await TestDatabase.withClient { client in
            let october = Date(iso8601: "2026-10-15T10:00:00Z")!
            let now = Date(iso8601: "2026-11-05T09:00:00Z")!
            let ledger = PostgresUsageLedger(client: client)
            _ = try await ledger.createPartitions(now: october, monthsAhead: 1, logger: UsageLedgerPartitionTests.logger)
            let rows = (0..<3).map { UsageLedgerPartitionTests.gatewayEvent(at: october.addingTimeInterval(Double($0)), subscription: "dropped") }
            let spool = ByteBuffer(string: rows.map(UsageStore.copyLine(for:)).joined())
            let store = UsageStore(client: client)
            #expect(try await store.insert(copyText: [spool], logger: UsageLedgerPartitionTests.logger) == 3)
            #expect(try await UsageLedgerPartitionTests.claims(client, rows) == 0)
            try await PeriodStore(client: client).close(BillingPeriod.month("2026-10")!, closedBy: "test", now: now, logger: UsageLedgerPartitionTests.logger)
            let outcome = try await ledger.applyRetention(keepMonths: 0, now: now, dryRun: false, logger: UsageLedgerPartitionTests.logger)
            #expect(outcome.dropped.map(\.table) == ["usage_events_2026_10"])
            // The month's ids became claims; its spool replayed after it is gone lands nothing (its rows would otherwise
            // wait in the default partition and count twice in the rollups).
            #expect(try await UsageLedgerPartitionTests.claims(client, rows) == 3)
            #expect(try await store.insert(copyText: [spool], logger: UsageLedgerPartitionTests.logger) == 0)
            #expect(try await UsageLedgerPartitionTests.count(client, "SELECT count(*)::int FROM usage_events WHERE subscription_id = 'dropped'") == 0)
            #expect(try await UsageLedgerPartitionTests.count(client, "SELECT coalesce(sum(requests), 0)::int FROM usage_hourly WHERE subscription_id = 'dropped'") == 3)
        }
    }
}

/// An existing database, with rows in the unpartitioned ledger, migrates in place: every row and id is kept.
@Suite(.freshDatabase) struct UsageLedgerMigrationTests {
    @Test func anExistingLedgerIsMovedIntoMonthlyPartitions() async throws {
        try await TestDatabase.withClient { client in
            let logger = TestDatabase.logger
            try await client.query("DROP SCHEMA reporting CASCADE", logger: logger)
            try await client.query("DROP SCHEMA public CASCADE", logger: logger)
            try await client.query("CREATE SCHEMA public", logger: logger)
            let all = try Migration.bundled()
            try await Migrator(client: client, migrations: all.filter { $0.version < 400 }, logger: logger).migrate()
            try await client.query(
                """
                INSERT INTO usage_events (request_id, started_at, ended_at, subscription_id, backend, model, route, http_status, latency_ms,
                    streamed, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, usage_source)
                VALUES ('019a0000-0000-7000-8000-000000000001', '2026-09-30 23:59:59+00', '2026-09-30 23:59:59+00', 'old', 'b', 'm', 'r', 200, 0, false, 1, 0, 1, 0, 0, 'reported'),
                       ('019a0000-0000-7000-8000-000000000002', '2026-10-01 00:00:00+00', '2026-10-01 00:00:00+00', 'old', 'b', 'm', 'r', 200, 0, false, 2, 0, 2, 0, 0, 'reported'),
                       ('019a0000-0000-7000-8000-000000000003', '2026-10-15 00:00:00+00', '2026-10-15 00:00:00+00', 'old', 'b', 'm', 'r', 200, 0, false, 4, 0, 4, 0, 0, 'reported')
                """, logger: logger)
            let applied = try await Migrator(client: client, migrations: all, logger: logger).migrate()
            #expect(applied.map(\.version).first == 400)
            var partitions: [String: Int] = [:]
            for try await (name, rows) in try await client.query(
                "SELECT tableoid::regclass::text, count(*)::int FROM usage_events GROUP BY 1", logger: logger
            ).decode((String, Int).self) { partitions[name] = rows }
            #expect(partitions == ["usage_events_2026_09": 1, "usage_events_2026_10": 2])
            let ids = try await client.query("SELECT count(*)::int FROM usage_request_ids", logger: logger).collect().first?.decode(Int.self)
            #expect(ids == 3)
            let partitioned = try await client.query(
                "SELECT relkind::text FROM pg_class WHERE oid = 'usage_events'::regclass", logger: logger).collect().first?.decode(String.self)
            #expect(partitioned == "p")
            // The replay of a migrated row is known.
            let replayed = UsageLedgerPartitionTests.event("019a0000-0000-7000-8000-000000000002", at: Date(iso8601: "2026-10-01T00:00:00Z")!, subscription: "old")
            #expect(try await UsageStore(client: client).insert([replayed], logger: logger) == 0)
        }
    }
}

struct EventIDMappingTests {
    @Test func version5MatchesRFC9562() {
        // RFC 9562 appendix A.4: the DNS namespace and "www.example.com".
        let dns = UUID(uuidString: "6ba7b810-9dad-11d1-80b4-00c04fd430c8")!
        #expect(ExternalUsageIngest.nameBasedUUID(namespace: dns, name: "www.example.com") == UUID(uuidString: "2ed6657d-e927-568b-95e1-2665a8aea6a2")!)
    }

    @Test func aUUIDIsTheRequestIDItselfAndAnyOtherStringIsHashedPerSource() {
        let uuid = "0192f000-0000-7000-8000-000000000001"
        #expect(ExternalUsageIngest.requestID(forEventID: uuid, source: "apim-east") == UUID(uuidString: uuid)!)
        #expect(ExternalUsageIngest.requestID(forEventID: uuid.uppercased(), source: "apim-west") == UUID(uuidString: uuid)!)
        // Worked out apart, with Python's uuid.uuid5(namespace, "apim-east:evt-1").
        #expect(ExternalUsageIngest.requestID(forEventID: "evt-1", source: "apim-east") == UUID(uuidString: "19f8f953-4737-5d36-a6cb-8fb2ad88d8fd")!)
        #expect(ExternalUsageIngest.requestID(forEventID: "evt-1", source: "apim-west") == UUID(uuidString: "636ca1c1-ada3-57e9-bff2-6d559d4e46c5")!)
        #expect(ExternalUsageIngest.eventIDNamespace == UUID(uuidString: "8c1f5b3e-27a4-4d6b-9e02-71c84ad53f90")!)
    }
}
