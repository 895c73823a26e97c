import ArgumentParser
import Foundation
import TollgateCore
import TollgateReports
import TollgateStore

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Produce finance reports.", subcommands: [Chargeback.self])

    struct Chargeback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A month's chargeback as CSV, JSON or FOCUS.",
            discussion: """
                Each line is rounded half to even to the currency's minor unit; the total is the sum of the lines. Usage with no \
                price in force is listed as unpriced, never billed as zero. A closed month's export never changes; late usage \
                appears in the next open month as corrections. See docs/reporting.md.

                Example: tollgate report chargeback --period 2026-10 --group-by team --format csv --output chargeback-2026-10.csv
                """)

        @Option(help: "The UTC month, yyyy-MM.") var period: String
        @Option(help: "team | cost-center | subscription | product | model") var groupBy: String = "team"
        @Option(help: "csv | json | focus (FOCUS 1.2 columns; one row per subscription, model, backend and price)") var format: String = "csv"
        @Option(help: "Write to this file instead of standard output.") var output: String?
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            guard BillingPeriod.month(period) != nil else { throw ValidationError("--period must be a month such as 2026-10") }
            guard ChargebackGrouping(rawValue: groupBy) != nil else {
                throw ValidationError("--group-by must be one of: \(ChargebackGrouping.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard ChargebackFormat(rawValue: format) != nil else { throw ValidationError("--format must be csv, json or focus") }
        }

        func run() async throws {
            let (period, groupBy, format, output) = (
                BillingPeriod.month(period)!, ChargebackGrouping(rawValue: groupBy)!, ChargebackFormat(rawValue: format)!, output
            )
            let data = try await CLIDatabase.withDatabase(database) { database, logger in
                try await ChargebackReport(database.repositories).generate(
                    period: period, groupBy: groupBy, format: format, now: Date(), logger: logger)
            }
            if let output {
                try data.write(to: URL(fileURLWithPath: output), options: .atomic)
            } else {
                FileHandle.standardOutput.write(data)
            }
        }
    }
}
