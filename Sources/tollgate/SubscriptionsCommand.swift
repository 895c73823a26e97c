import ArgumentParser
import Foundation
import TollgateServer
import TollgateStore

/// `tollgate subscriptions suspend|resume`: change a subscription's state by hand, with a reason for the audit trail.
struct SubscriptionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscriptions",
        abstract: "Suspend or resume a subscription by hand.",
        discussion: """
            A manual suspension is yours: period rollover never re-enables it. Resuming releases the rules engine's \
            hold for the rest of the period; --increase also raises the limit of each budget holding the subscription, \
            for this period only, so it can alert and suspend again later.
            """,
        subcommands: [Suspend.self, Resume.self])

    struct Suspend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Suspend a subscription: its callers get 403 at once on every instance.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The subscription id.") var id: String
        @Option(help: "Why. Kept in the audit trail and shown to callers in the 403.") var reason: String
        @Option(help: "Who is acting, recorded as admin:<name>.") var actor: String = ProcessInfo.processInfo.environment["USER"] ?? "cli"

        func run() async throws {
            let (id, reason, actor) = (id, reason, actor)
            let change = try await CLIDatabase.withDatabase(database) { database, _ in
                try await RulesAdmin.suspend(
                    rules: database.rules, subscription: id, reason: reason, actor: "admin:\(actor)")
            }
            print(RulesAdmin.describe(change))
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a subscription, whoever suspended it.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The subscription id.") var id: String
        @Option(help: "Why. Kept in the audit trail.") var reason: String
        @Option(help: "One-off increase of each holding budget's limit for the current period (tokens, or an amount in the budget's currency).")
        var increase: String?
        @Option(help: "Who is acting, recorded as admin:<name>.") var actor: String = ProcessInfo.processInfo.environment["USER"] ?? "cli"

        func run() async throws {
            let (id, reason, actor, increase) = (id, reason, actor, increase)
            let change = try await CLIDatabase.withDatabase(database) { database, _ in
                try await RulesAdmin.resume(
                    rules: database.rules, subscription: id, reason: reason, actor: "admin:\(actor)", increase: increase)
            }
            print(RulesAdmin.describe(change))
        }
    }
}
