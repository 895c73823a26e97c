import ArgumentParser
import Foundation
import TollgateCore
import TollgateReports
import TollgateStore

struct PricesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prices", abstract: "Manage effective-dated model prices and backend commitments (PTU).",
        subcommands: [Import.self, List.self, Commit.self])

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a price list (CSV) or a shipped catalog. All or nothing; re-importing the same file changes nothing.",
            discussion: """
                Header: \(PriceListCSV.columns.joined(separator: ","))

                Prices are per 1M tokens. effective_from (RFC 3339, or yyyy-MM-dd for midnight UTC) must be on a whole UTC hour \
                and after the last closed month. An empty cached_input_per_1m bills cached tokens as input; an empty \
                reasoning_per_1m bills reasoning as output. Every bad line is reported with its line number and nothing is imported.

                --catalog openai (or azure-openai) imports the list prices that ship inside the binary (prices/ in the repository,
                sources in prices/README.md), recorded as catalog:NAME@<content hash>.
                """)

        @Argument(help: "The CSV file.") var file: String?
        @Option(help: "A shipped catalog instead of a file: openai or azure-openai.") var catalog: String?
        @Option(help: "Name recorded as the price-list version (default: file name and content hash).") var priceList: String?
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            guard (file == nil) != (catalog == nil) else { throw ValidationError("Give either a CSV file or --catalog NAME.") }
        }

        func run() async throws {
            let prices: [ModelPrice]
            let name: String
            if let catalog {
                do {
                    let shipped = try PriceCatalog.load(named: catalog)
                    (prices, name) = (shipped.prices, priceList ?? shipped.priceList)
                } catch {
                    throw CLIError(error.description)
                }
            } else {
                let file = self.file ?? ""
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                do { prices = try PriceListCSV.parse(String(decoding: data, as: UTF8.self)) } catch {
                    throw CLIError(error.errors.map { "\(file):\($0.line): \($0.message)" }.joined(separator: "\n"))
                }
                name = priceList ?? PriceListVersion.name(file: URL(fileURLWithPath: file).lastPathComponent, contents: data)
            }
            let summary = try await CLIDatabase.withDatabase(database) { database, logger in
                try await database.prices.importPrices(prices, priceList: name, logger: logger)
            }
            print("\(name): \(summary.added) price version(s) added, \(summary.unchanged) already present")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every price version as CSV (with id, validity end and price list).")
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let prices = try await CLIDatabase.withDatabase(database) { database, logger in try await database.prices.list(logger: logger) }
            FileHandle.standardOutput.write(PriceListing.csv(prices))
        }
    }

    struct Commit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "commit",
            abstract: "Set a backend's fixed monthly commitment (provisioned throughput), from a month on.",
            discussion: """
                The commitment is allocated to the subscriptions that used the backend, pro rata by tokens, and shown apart from
                pay-as-you-go usage in every export. An amount of 0 ends an earlier commitment. Closed months cannot change.
                Example: tollgate prices commit --backend azure-ptu --from 2026-10 --amount 12000.00 --currency USD
                """)
        @Option(help: "The backend, as named in tollgate.yaml.") var backend: String
        @Option(name: .customLong("from"), help: "First month it applies to, yyyy-MM.") var month: String
        @Option(help: "Amount per month, a plain decimal (12000.00).") var amount: String
        @Option(help: "ISO 4217 currency code.") var currency: String = "USD"
        @Option(help: "A note shown in exports.") var note: String?
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            guard let period = BillingPeriod.month(month) else { throw CLIError("--from must be a month such as 2026-10") }
            guard let value = Decimal(exactly: amount), value >= 0 else { throw CLIError("--amount must be a plain non-negative decimal such as 12000.00") }
            guard currency.range(of: "^[A-Z]{3}$", options: .regularExpression) != nil else { throw CLIError("--currency must be an ISO 4217 code such as USD") }
            let commitment = PTUCommitment(backend: backend, effectiveFrom: period.start, monthlyAmount: value, currency: currency, description: note)
            try await CLIDatabase.withDatabase(database) { database, logger in try await database.commitments.set(commitment, logger: logger) }
            print("\(backend): \(value) \(currency) per month from \(month)")
        }
    }
}
