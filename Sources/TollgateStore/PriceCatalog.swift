import Foundation

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
}
