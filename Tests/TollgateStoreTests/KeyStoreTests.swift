import Foundation
import PostgresNIO
import Testing
import TollgateCore
import TollgateStore
import TollgateTestSupport

/// Creates a subscription row directly, so these tests depend on nothing but the schema.
private func subscription(_ id: String, _ client: PostgresClient) async throws -> SubscriptionID {
    try await client.query("INSERT INTO subscriptions (id) VALUES (\(id))", logger: TestDatabase.logger)
    return SubscriptionID(id)
}

/// Each test uses its own subscription, so they can share the suite's database.
@Suite(.freshDatabase) struct KeyStoreTests {
    @Test func theKeyIsShownOnceAndOnlyItsHashAndPrefixAreStored() async throws {
        try await TestDatabase.withClient { client in
            let owner = try await subscription("k-create", client)
            let (key, info) = try await KeyStore(client: client).create(for: owner, slot: .primary, logger: TestDatabase.logger)
            #expect(key.range(of: #"^tgk_[0-9A-Za-z]{40}$"#, options: .regularExpression) != nil)
            #expect(info.prefix.count == 12)
            #expect(key.hasPrefix(info.prefix))
            #expect(info.subscription == owner)
            #expect(info.slot == "primary")
            #expect(info.revokedAt == nil)

            // PostgreSQL computes the SHA-256 independently of the code under test.
            let row = try #require(
                try await client.query(
                    """
                    SELECT key_hash = sha256(convert_to(\(key), 'UTF8')), prefix, octet_length(key_hash)::int, row_to_json(k)::text
                    FROM subscription_keys k WHERE subscription_id = 'k-create'
                    """, logger: TestDatabase.logger
                ).collect().first)
            let (hashMatches, prefix, length, wholeRow) = try row.decode((Bool, String, Int, String).self)
            #expect(hashMatches)
            #expect(prefix == info.prefix)
            #expect(length == 32)
            #expect(!wholeRow.contains(String(key.dropFirst(12))))  // the secret part is nowhere in the row

            let listed = try await KeyStore(client: client).list(subscription: owner, includeRevoked: true, logger: TestDatabase.logger)
            #expect(listed.map(\.id) == [info.id])
        }
    }

    @Test func hashIsSHA256() {
        let hex = KeyStore.hash("abc").map { String(format: "%02x", $0) }.joined()
        #expect(hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(KeyStore.prefix(of: "tgk_0123456789abcdef") == "tgk_01234567")
    }

    @Test func aSecondLiveKeyInTheSameSlotIsRefused() async throws {
        try await TestDatabase.withClient { client in
            let owner = try await subscription("k-slot", client)
            let keys = KeyStore(client: client)
            let first = try await keys.create(for: owner, slot: .primary, logger: TestDatabase.logger)
            let error = await #expect(throws: KeyStoreError.self) { try await keys.create(for: owner, slot: .primary, logger: TestDatabase.logger) }
            guard case .slotTaken(let id, let slot) = error else {
                Issue.record("expected slotTaken, got \(String(describing: error))")
                return
            }
            #expect(id == owner)
            #expect(slot == .primary)
            // Rotation: the other slot is free, and the first slot frees up once its key is revoked.
            _ = try await keys.create(for: owner, slot: .secondary, logger: TestDatabase.logger)
            _ = try await keys.revoke(first.info.prefix, logger: TestDatabase.logger)
            let replacement = try await keys.create(for: owner, slot: .primary, logger: TestDatabase.logger)
            let live = try await keys.list(subscription: owner, includeRevoked: false, logger: TestDatabase.logger)
            #expect(Set(live.map(\.slot)) == ["primary", "secondary"])
            #expect(live.contains { $0.id == replacement.info.id })
        }
    }

    @Test func revokeByPrefix() async throws {
        try await TestDatabase.withClient { client in
            let owner = try await subscription("k-revoke", client)
            let keys = KeyStore(client: client)
            let created = try await keys.create(for: owner, slot: .primary, logger: TestDatabase.logger)
            let revoked = try await keys.revoke(created.info.prefix, logger: TestDatabase.logger)
            #expect(revoked.id == created.info.id)
            #expect(revoked.revokedAt != nil)
            #expect(try await keys.list(subscription: owner, includeRevoked: false, logger: TestDatabase.logger).isEmpty)
            #expect(try await keys.list(subscription: owner, includeRevoked: true, logger: TestDatabase.logger).map(\.id) == [created.info.id])
            // A revoked key no longer authenticates: it is gone from the gateway's snapshot.
            #expect(try await CatalogStore(client: client).snapshot(logger: TestDatabase.logger).keys[KeyStore.hash(created.key)] == nil)

            let again = await #expect(throws: KeyStoreError.self) { try await keys.revoke(created.info.prefix, logger: TestDatabase.logger) }
            guard case .unknownKey(let named) = again else {
                Issue.record("expected unknownKey, got \(String(describing: again))")
                return
            }
            #expect(named == created.info.prefix)
        }
    }

    @Test func revokeByID() async throws {
        try await TestDatabase.withClient { client in
            let owner = try await subscription("k-revoke-id", client)
            let keys = KeyStore(client: client)
            let created = try await keys.create(for: owner, slot: .secondary, logger: TestDatabase.logger)
            #expect(
                try await CatalogStore(client: client).snapshot(logger: TestDatabase.logger).keys[KeyStore.hash(created.key)]?.subscription == owner)
            let revoked = try await keys.revoke(created.info.id.uuidString, logger: TestDatabase.logger)
            #expect(revoked.id == created.info.id)
            #expect(revoked.slot == "secondary")
        }
    }

    @Test func anAmbiguousPrefixRevokesNothing() async throws {
        try await TestDatabase.withClient { client in
            _ = try await subscription("k-ambiguous-1", client)
            _ = try await subscription("k-ambiguous-2", client)
            try await client.query(
                """
                INSERT INTO subscription_keys (id, subscription_id, slot, prefix, key_hash) VALUES
                  (\(UUIDv7.make()), 'k-ambiguous-1', 'primary', 'tgk_SAMEPREF', sha256('one')),
                  (\(UUIDv7.make()), 'k-ambiguous-2', 'primary', 'tgk_SAMEPREF', sha256('two'))
                """, logger: TestDatabase.logger)
            await #expect(throws: KeyStoreError.self) { try await KeyStore(client: client).revoke("tgk_SAMEPREF", logger: TestDatabase.logger) }
            let live = try await client.query(
                "SELECT count(*)::int FROM subscription_keys WHERE prefix = 'tgk_SAMEPREF' AND revoked_at IS NULL", logger: TestDatabase.logger
            ).collect().first?.decode(Int.self)
            #expect(live == 2)
        }
    }

    @Test func anUnknownSubscriptionGetsNoKey() async throws {
        try await TestDatabase.withClient { client in
            let error = await #expect(throws: KeyStoreError.self) {
                try await KeyStore(client: client).create(for: "nobody-here", slot: .primary, logger: TestDatabase.logger)
            }
            guard case .unknownSubscription(let id) = error else {
                Issue.record("expected unknownSubscription, got \(String(describing: error))")
                return
            }
            #expect(id == "nobody-here")
            let count = try await client.query(
                "SELECT count(*)::int FROM subscription_keys WHERE subscription_id = 'nobody-here'", logger: TestDatabase.logger
            ).collect().first?.decode(Int.self)
            #expect(count == 0)
        }
    }

    @Test func generatedKeysDoNotRepeat() {
        let keys = Set((0..<2_000).map { _ in KeyStore.generateKey() })
        #expect(keys.count == 2_000)
    }
}
