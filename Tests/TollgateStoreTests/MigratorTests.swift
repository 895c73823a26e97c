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

/// An applied file that was edited stops `migrate` and `requireCurrent` before anything runs.
@Suite(.freshDatabase) struct MigratorChecksumTests {
    @Test func editedAppliedMigrationIsRefused() async throws {
        try await TestDatabase.withClient { client in
            var migrations = try Migration.bundled()
            let catalog = try #require(migrations.firstIndex { $0.version == 1 })
            migrations[catalog].sql += "\n-- an innocent-looking edit\n"
            let migrator = Migrator(client: client, migrations: migrations, logger: TestDatabase.logger)
            let error = await #expect(throws: MigrationError.self) { try await migrator.migrate() }
            guard case .checksumMismatch(let version, let name) = error else {
                Issue.record("expected checksumMismatch, got \(String(describing: error))")
                return
            }
            #expect(version == 1)
            #expect(name == "catalog")
            #expect("\(error!)".hasPrefix("migration 0001_catalog.sql was edited after it was applied"))
            await #expect(throws: MigrationError.self) { try await migrator.requireCurrent() }
        }
    }
}

/// Its own suite: it adds a table and a migration record to the database.
@Suite(.freshDatabase) struct MigratorNewMigrationTests {
    @Test func aNewMigrationIsReportedThenAppliedAndRecorded() async throws {
        try await TestDatabase.withClient { client in
            let probe = Migration(version: 9001, name: "probe", sql: "CREATE TABLE probe (id int);\nINSERT INTO probe VALUES (1), (2);\n")
            let migrator = Migrator(client: client, migrations: try Migration.bundled() + [probe], logger: TestDatabase.logger)
            let error = await #expect(throws: MigrationError.self) { try await migrator.requireCurrent() }
            guard case .schemaOutOfDate(let databaseVersion, let binaryVersion) = error else {
                Issue.record("expected schemaOutOfDate, got \(String(describing: error))")
                return
            }
            #expect(binaryVersion == 9001)
            #expect(databaseVersion < 9001)

            let applied = try await migrator.migrate()
            #expect(applied.map(\.version) == [9001])
            let count = try await client.query("SELECT count(*) FROM probe", logger: TestDatabase.logger).collect().first?.decode(Int.self)
            #expect(count == 2)
            let recorded = try await client.query(
                "SELECT name, checksum FROM tollgate_schema_migrations WHERE version = 9001", logger: TestDatabase.logger
            ).collect().first?.decode((String, String).self)
            #expect(recorded?.0 == "probe")
            #expect(recorded?.1 == "14f99cd25655fc2f2d7b2e3c14445ae97dacbb5023caca0b21aae2c257bcf9db")
            try await migrator.requireCurrent()
        }
    }
}

/// A file numbered below the newest applied migration would run last on this database and in its place on a fresh one:
/// refused, naming the versions, before anything runs.
@Suite(.freshDatabase) struct MigratorOrderTests {
    @Test func aMissingMigrationBelowTheNewestAppliedIsRefused() async throws {
        try await TestDatabase.withClient { client in
            let bundled = try Migration.bundled()
            let newest = try #require(bundled.last?.version)
            let late = Migration(version: 203, name: "late_arrival", sql: "CREATE TABLE late_arrival (id int);\n")
            let migrator = Migrator(client: client, migrations: (bundled + [late]).sorted { $0.version < $1.version }, logger: TestDatabase.logger)
            let error = await #expect(throws: MigrationError.self) { try await migrator.migrate() }
            guard case .missingBelowApplied(let missing, let newestApplied) = error else {
                Issue.record("expected missingBelowApplied, got \(String(describing: error))")
                return
            }
            #expect(missing == [203])
            #expect(newestApplied == newest)
            #expect("\(error!)".hasPrefix("migration 0203 is not applied but numbered below \(String(format: "%04d", newest)), the newest applied one"))
            let created = try await client.query("SELECT to_regclass('late_arrival') IS NOT NULL", logger: TestDatabase.logger)
                .collect().first?.decode(Bool.self)
            #expect(created == false)
            await #expect(throws: MigrationError.self) { try await migrator.requireCurrent() }
        }
    }
}

/// Its own suite: a failing migration must leave nothing behind.
@Suite(.freshDatabase) struct MigratorFailedMigrationTests {
    @Test func aFailingMigrationRollsBackEntirely() async throws {
        try await TestDatabase.withClient { client in
            let broken = Migration(version: 9002, name: "broken", sql: "CREATE TABLE half_done (id int);\nSELECT 1 / 0;\n")
            let migrator = Migrator(client: client, migrations: try Migration.bundled() + [broken], logger: TestDatabase.logger)
            await #expect(throws: (any Error).self) { try await migrator.migrate() }
            let state = try await client.query(
                "SELECT to_regclass('half_done') IS NULL, NOT EXISTS (SELECT 1 FROM tollgate_schema_migrations WHERE version = 9002)",
                logger: TestDatabase.logger
            ).collect().first?.decode((Bool, Bool).self)
            #expect(state?.0 == true)
            #expect(state?.1 == true)
            // The advisory lock was released: another migrate on the same connection pool does not hang.
            let current = Migrator(client: client, migrations: try Migration.bundled(), logger: TestDatabase.logger)
            #expect(try await current.migrate().isEmpty)
        }
    }
}

struct MigrationFilesTests {
    @Test func checksumIsTheSHA256OfTheFile() {
        #expect(Migration(version: 1, name: "x", sql: "SELECT 1;\n").checksum == "b4e0497804e46e0a0b0b8c31975b062152d551bac49c3c2e80932567b4085dcd")
    }

    @Test func loadsNumberedFilesInOrderAndIgnoresTheRest() throws {
        let directory = try temporaryDirectory(files: [
            "0002_second.sql": "SELECT 2;", "0001_first.sql": "SELECT 1;", "README.md": "# not SQL", "notes.sql": "SELECT 0;",
            "0010_tenth.sql": "SELECT 10;",
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let migrations = try Migration.load(from: directory)
        #expect(migrations.map(\.version) == [1, 2, 10])
        #expect(migrations.map(\.name) == ["first", "second", "tenth"])
        #expect(migrations.map(\.sql) == ["SELECT 1;", "SELECT 2;", "SELECT 10;"])
    }

    @Test func twoFilesWithOneVersionAreAnError() throws {
        let directory = try temporaryDirectory(files: ["0001_a.sql": "SELECT 1;", "1_b.sql": "SELECT 2;"])
        defer { try? FileManager.default.removeItem(at: directory) }
        let error = #expect(throws: MigrationError.self) { try Migration.load(from: directory) }
        guard case .duplicateVersion(1) = error else {
            Issue.record("expected duplicateVersion(1), got \(String(describing: error))")
            return
        }
    }

    @Test func theBundledMigrationsStartAtOneWithoutGaps() throws {
        let versions = try Migration.bundled().map(\.version).filter { $0 < 100 }
        #expect(versions.first == 1)
        #expect(versions == Array(1...(versions.last ?? 0)))
    }

    private func temporaryDirectory(files: [String: String]) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return directory
    }
}
