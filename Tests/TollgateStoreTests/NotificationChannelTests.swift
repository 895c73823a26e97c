import Foundation
import Testing
import TollgateStore

/// The migrations' triggers spell the NOTIFY channels as SQL literals; the Swift side names them through
/// `NotificationChannel`. A channel renamed on one side only would silently stop waking the other.
struct NotificationChannelTests {
    @Test func everyChannelTheMigrationsNotifyOnIsANamedChannel() throws {
        let pattern = try Regex(#"pg_notify\s*\(\s*'([a-z_]+)'"#)
        var notified: Set<String> = []
        for migration in try Migration.bundled() {
            for match in migration.sql.matches(of: pattern) {
                notified.insert(String(try #require(match.output[1].substring)))
            }
        }
        #expect(!notified.isEmpty)
        #expect(notified.isSubset(of: Set(NotificationChannel.allCases.map(\.name))), "unnamed channels: \(notified)")
        // The catalog and webhook channels are sent by triggers; the usage channel by the writer, from Swift.
        #expect(notified.contains(NotificationChannel.catalog.name))
        #expect(notified.contains(NotificationChannel.webhooks.name))
    }

    @Test func channelNamesAreDistinct() {
        #expect(Set(NotificationChannel.allCases.map(\.name)).count == NotificationChannel.allCases.count)
    }
}
