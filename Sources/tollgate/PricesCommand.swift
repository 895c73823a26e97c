import ArgumentParser
import Foundation
import TollgateCore
import TollgateReports
import TollgateStore

struct PricesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prices", abstract: "Manage effective-dated model prices.", subcommands: [Import.self, List.self])

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a price list (CSV). All or nothing; re-importing the same file changes nothing.",
            discussion: """
                Header: \(PriceListCSV.columns.joined(separator: ","))

                Prices are per 1M tokens. effective_from (RFC 3339, or yyyy-MM-dd for midnight UTC) must be on a whole UTC hour \
                and after the last closed month. An empty cached_input_per_1m bills cached tokens as input; an empty \
                reasoning_per_1m bills reasoning as output. Every bad line is reported with its line number and nothing is imported.
                """)

        @Argument(help: "The CSV file.") var file: String
        @Option(help: "Name recorded as the price-list version (default: file name and content hash).") var priceList: String?
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            let prices: [ModelPrice]
            do { prices = try PriceListCSV.parse(String(decoding: data, as: UTF8.self)) } catch {
                throw CLIError(error.errors.map { "\(file):\($0.line): \($0.message)" }.joined(separator: "\n"))
            }
            let name = priceList ?? PriceListVersion.name(file: URL(fileURLWithPath: file).lastPathComponent, contents: data)
            let summary = try await CLIDatabase.withClient(database) { client, logger in
                try await PriceStore(client: client).importPrices(prices, priceList: name, logger: logger)
            }
            print("\(name): \(summary.added) price version(s) added, \(summary.unchanged) already present")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every price version as CSV (with id, validity end and price list).")
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let prices = try await CLIDatabase.withClient(database) { client, logger in try await PriceStore(client: client).list(logger: logger) }
            FileHandle.standardOutput.write(PriceListing.csv(prices))
        }
    }
}
