import Foundation
import PostgresNIO
import Testing
import TollgateStore
import TollgateTestSupport

@Suite(.freshDatabase) struct MigratorTests {
    @Test func migratingTwiceAppliesNothingTheSecondTime() async throws {
        try await TestDatabase.withClient { client in
            let migrator = Migrator(client: client, migrations: try Migration.bundled(), logger: TestDatabase.logger)
            let applied = try await migrator.migrate()
            #expect(applied.isEmpty)
            try await migrator.requireCurrent()
        }
    }
}

/// Its own suite, because it leaves the database at a schema no binary knows.
@Suite(.freshDatabase) struct MigratorNewerSchemaTests {
    @Test func refusesADatabaseWhoseSchemaIsNewer() async throws {
        try await TestDatabase.withClient { client in
            let migrations = try Migration.bundled()
            try await client.query(
                "INSERT INTO tollgate_schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')", logger: TestDatabase.logger)
            let migrator = Migrator(client: client, migrations: migrations, logger: TestDatabase.logger)
            await #expect(throws: MigrationError.self) { try await migrator.migrate() }
        }
    }
}
