import Foundation
import TollgateCore

/// The list-price catalogs that ship inside the binary's resource bundle (the repository's `prices/NAME.csv`, beside
/// the migrations), imported by `tollgate prices import --catalog NAME`. prices/README.md says where each figure is from.
public enum PriceCatalog {
    /// The names of the shipped catalogs (`openai`, `azure-openai`), sorted.
    public static func names() -> [String] {
        guard let directory = Bundle.module.url(forResource: "prices", withExtension: nil),
            let files = try? FileManager.default.contentsOfDirectory(atPath: directory.path)
        else { return [] }
        return files.filter { $0.hasSuffix(".csv") }.map { String($0.dropLast(4)) }.sorted()
    }

    /// The catalog's CSV file, or nil when no catalog has that name. A name is never read as a path.
    public static func file(named name: String) -> URL? {
        guard names().contains(name), let directory = Bundle.module.url(forResource: "prices", withExtension: nil) else { return nil }
        return directory.appendingPathComponent("\(name).csv")
    }

    /// The catalog's price versions, and the price-list name they are recorded under: `catalog:NAME@<content hash>`,
    /// so a later edition of the same catalog is told apart in reports.
    /// - Throws: `PriceCatalogError` when no catalog has that name or its file does not parse.
    public static func load(named name: String) throws(PriceCatalogError) -> (prices: [ModelPrice], priceList: String) {
        guard let file = file(named: name), let data = try? Data(contentsOf: file) else { throw .unknown(name, shipped: names()) }
        do {
            let prices = try PriceListCSV.parse(String(decoding: data, as: UTF8.self))
            return (prices, PriceListVersion.name(file: "catalog:\(name)", contents: data))
        } catch {
            throw .invalid(name, lines: error.errors.map { "line \($0.line): \($0.message)" })
        }
    }
}

public enum PriceCatalogError: Error, Hashable, Sendable, CustomStringConvertible {
    case unknown(String, shipped: [String])
    case invalid(String, lines: [String])

    public var description: String {
        switch self {
        case .unknown(let name, let shipped): "no price catalog '\(name)'; shipped: \(shipped.joined(separator: ", "))"
        case .invalid(let name, let lines): "the shipped catalog '\(name)' does not parse: \(lines.joined(separator: "; "))"
        }
    }
}
