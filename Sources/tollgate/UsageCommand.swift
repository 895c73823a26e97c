import ArgumentParser
import Foundation
import TollgateCore
import TollgateServer
import TollgateStore

struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Manage the raw usage ledger (one partition per UTC month).", subcommands: [Retention.self])

    struct Retention: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop raw usage months older than N months, once their billing period is closed.",
            discussion: """
                The raw ledger (usage_events) holds one row per request, one partition per UTC month. Reports, budgets, \
                exports and the reporting views read the hourly and daily rollups, which keep the whole history: dropping a \
                raw month changes none of them. What goes is the per-request detail (request ids, latencies, response ids).

                --keep-months N keeps the current month and the N months before it; older months are dropped, all of \
                them or none: if one of them is not closed (`tollgate period close yyyy-MM`), nothing is dropped and the \
                command says which months to close. Request ids stay known after their month is dropped, so a usage \
                spool or an ingest batch replayed later still lands nothing twice.

                `tollgate serve` applies the same retention every few hours when TOLLGATE_USAGE_RETENTION_MONTHS is set.

                Examples:
                  tollgate usage retention --keep-months 13 --dry-run   # what would go
                  tollgate usage retention --keep-months 13
                """)

        @Option(help: ArgumentHelp("Months kept before the current one. Default: $TOLLGATE_USAGE_RETENTION_MONTHS.", valueName: "N"))
        var keepMonths: Int?
        @Flag(help: "List the months that would be dropped; drop nothing.") var dryRun = false
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            guard let keep = try keepMonths ?? database.configuration().usageRetentionMonths else {
                throw ValidationError("say how many months to keep: --keep-months N (or set TOLLGATE_USAGE_RETENTION_MONTHS)")
            }
            let outcome = try await CLIDatabase.withDatabase(database) { database, logger in
                do {
                    return try await database.usageLedger.applyRetention(keepMonths: keep, now: Date(), dryRun: dryRun, logger: logger)
                } catch let refusal as RetentionError {
                    throw CLIError(refusal.description)
                }
            }
            let verb = outcome.dryRun ? "would drop" : "dropped"
            let before = BillingPeriod.containing(outcome.cutoff, kind: .monthly).monthLabel
            if outcome.dropped.isEmpty { print("no raw usage month before \(before); nothing to drop") }
            for month in outcome.dropped {
                print("\(verb) \(month.period.monthLabel) (\(month.table), \(month.bytes / 1_048_576) MiB)")
            }
        }
    }
}
