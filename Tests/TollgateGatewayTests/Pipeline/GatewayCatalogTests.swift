import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// The gateway's catalog cache on in-memory repositories: reloads on a change notification, keeps the last catalog
/// when a load fails.
@Suite struct GatewayCatalogTests {
    @Test func aCatalogNotificationReloadsTheCatalog() async throws {
        let fixture = await PipelineFixture()
        let notifications = InMemoryChangeNotifications()
        let refresher = CatalogRefresher(catalog: fixture.catalog, notifications: notifications, interval: .seconds(3_600), logger: PipelineFixture.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await refresher.run() }
            while notifications.watcherCount(.catalog) == 0 { try await Task.sleep(for: .milliseconds(5)) }
            let key = fixture.repository.createKey(for: "sub-c")
            notifications.post(.catalog)
            let hash = KeyStore.hash(key)
            let deadline = ContinuousClock.now + .seconds(5)
            while fixture.catalog.snapshot.keys[hash] == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            #expect(fixture.catalog.snapshot.keys[hash]?.subscription == "sub-c")
            group.cancelAll()
        }
    }

    @Test func aFailedLoadKeepsServingTheLastCatalog() async throws {
        let fixture = await PipelineFixture()
        let key = try #require(fixture.keys["sub-a"])
        fixture.repository.revokeKey(key)
        fixture.repository.failLoads(with: CatalogError.unknownBackendKind(backend: "future", kind: "bedrock"))
        await fixture.catalog.refresh()
        #expect(fixture.catalog.snapshot.keys[KeyStore.hash(key)] != nil)  // not half-loaded, not emptied
        fixture.repository.failLoads(with: nil)
        await fixture.catalog.refresh()
        #expect(fixture.catalog.snapshot.keys[KeyStore.hash(key)] == nil)
    }
}
