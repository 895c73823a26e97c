import ArgumentParser
import Foundation
import TollgateCore
import TollgateServer
import TollgateStore

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the SQL migrations the database is missing.",
        discussion: "Each migration runs in its own transaction and is recorded with its checksum. Refuses a database whose schema is newer than this binary.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let configuration = try database.configuration()
        let logger = try database.logger()
        let resolution = try await DatabaseResolution.resolve(configuration: configuration, logger: logger)
        defer { try? resolution.startedCluster?.stopWaiting() }  // a short-lived command: blocking here is fine
        let applied = try await PostgresDatabase.withDatabase(resolution.location, logger: logger) { database in
            try await database.migrator().migrate()
        }
        for migration in applied { print("applied \(String(format: "%04d", migration.version))_\(migration.name).sql") }
        print(applied.isEmpty ? "schema is up to date" : "\(applied.count) migration(s) applied")
    }
}

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a tollgate.yaml without touching any database.",
        discussion: "Exits non-zero with FILE:LINE:COLUMN: FIELD: PROBLEM for the first problem found.")

    @Option(name: [.customShort("f"), .customLong("file")], help: ArgumentHelp("The configuration file.", valueName: "file"))
    var file: String = "tollgate.yaml"

    func run() async throws {
        let document: PolicyDocument
        do { document = try PolicyFile.load(path: file) } catch { throw CLIError(error.description) }
        print("\(file): ok (\(document.backends.count) backend(s), \(document.products.count) product(s), \(document.subscriptions.count) subscription(s))")
    }
}

struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Apply tollgate.yaml (backends, products, subscriptions) to the database.",
        discussion: """
            Applied in one transaction: a malformed file changes nothing. Backends not in the file are removed; products and
            subscriptions are created or updated, never deleted (usage history names them). A subscription's state set by an
            admin or the rules engine is kept unless the file changes it.
            """)

    @Option(name: [.customShort("f"), .customLong("file")], help: ArgumentHelp("The configuration file.", valueName: "file"))
    var file: String = "tollgate.yaml"

    @Flag(help: "Print what would change and change nothing.")
    var dryRun = false

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let document: PolicyDocument
        do { document = try PolicyFile.load(path: file) } catch { throw CLIError(error.description) }
        let dryRun = self.dryRun
        let changes = try await CLIDatabase.withDatabase(database) { database, logger in
            let policy = PolicyApplier(repositories: database.repositories)
            let changes = try await policy.plan(document, logger: logger)
            if !dryRun { try await policy.apply(document, logger: logger) }
            return changes
        }
        for line in changes { print(line) }
        print(changes.isEmpty ? "no changes" : (dryRun ? "\(changes.count) change(s) would be applied (dry run)" : "\(changes.count) change(s) applied"))
    }
}

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list and revoke subscription keys.",
        discussion: "Keys are shown once, at creation; only a SHA-256 hash and a short prefix are stored. Each subscription has a primary and a secondary slot, so a key can be rotated without downtime: create the secondary, move clients, revoke the primary.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key for a subscription and print it (once).")
        @Option(help: "The subscription id, as in tollgate.yaml.") var subscription: String
        @Option(help: "primary or secondary.") var slot: KeySlot = .primary
        @Flag(help: "Print only the key (for scripts).") var quiet = false
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let (subscription, slot) = (SubscriptionID(self.subscription), self.slot)
            let created = try await CLIDatabase.withDatabase(database) { database, logger in
                do { return try await database.keys.create(for: subscription, slot: slot, logger: logger) } catch let error as KeyStoreError {
                    throw CLIError(error.description)
                }
            }
            if quiet {
                print(created.key)
            } else {
                print(created.key)
                FileHandle.standardError.write(Data("Key \(created.info.prefix)… (\(slot.rawValue)) created for \(subscription). Store it now: it is not shown again.\n".utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (prefixes only).")
        @Option(help: "Only this subscription's keys.") var subscription: String?
        @Flag(help: "Include revoked keys.") var all = false
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let (subscription, all) = (self.subscription.map { SubscriptionID($0) }, self.all)
            let keys = try await CLIDatabase.withDatabase(database) { database, logger in
                try await database.keys.list(subscription: subscription, includeRevoked: all, logger: logger)
            }
            print(["SUBSCRIPTION", "SLOT", "PREFIX", "ID", "CREATED", "REVOKED"].joined(separator: "\t"))
            for key in keys {
                print([key.subscription.rawValue, key.slot, key.prefix, key.id.uuidString.lowercased(), key.createdAt.iso8601, key.revokedAt?.iso8601 ?? "-"]
                    .joined(separator: "\t"))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by its id or prefix; every instance stops accepting it within a second.")
        @Argument(help: "The key's id or prefix, as `keys list` shows it.") var key: String
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let key = self.key
            let info = try await CLIDatabase.withDatabase(database) { database, logger in
                do { return try await database.keys.revoke(key, logger: logger) } catch let error as KeyStoreError {
                    throw CLIError(error.description)
                }
            }
            print("revoked \(info.prefix) (\(info.slot)) of \(info.subscription)")
        }
    }
}

extension KeySlot: ExpressibleByArgument {}
