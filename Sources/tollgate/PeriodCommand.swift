import ArgumentParser
import Foundation
import TollgateCore
import TollgateStore

struct PeriodCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "period", abstract: "Close billing months.", subcommands: [Close.self])

    struct Close: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Freeze a month: its exports never change again.",
            discussion: "Months close in order, once they have ended. Usage that arrives later is booked in the next open month as a correction.")

        @Argument(help: "The UTC month, yyyy-MM.") var period: String
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            guard BillingPeriod.month(period) != nil else { throw ValidationError("the period must be a month such as 2026-10") }
        }

        func run() async throws {
            let period = BillingPeriod.month(period)!
            let user = ProcessInfo.processInfo.environment["USER"] ?? "unknown"
            try await CLIDatabase.withDatabase(database) { database, logger in
                try await database.periods.close(period, closedBy: "cli:\(user)", now: Date(), logger: logger)
            }
            print("\(period.monthLabel) closed")
        }
    }
}
