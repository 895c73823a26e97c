import Foundation
import Testing

/// `TollgateStore` is the one persistence boundary: no other target of the product may import PostgresNIO or depend on
/// it, and `TollgateCore` imports Foundation alone. Read from the sources and the manifest, so breaking the rule fails
/// here whether or not the compiler would have let it through a transitive dependency.
struct PersistenceBoundaryTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The modules a Swift file imports, whatever the import's attributes or access level (`@preconcurrency`,
    /// `public`, `internal import struct M.T`).
    static func importedModules(of source: String) throws -> Set<String> {
        let pattern = try Regex(#"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|package|internal|fileprivate|private)\s+)?import\s+(?:(?:typealias|struct|class|enum|protocol|let|var|func)\s+)?([A-Za-z_][A-Za-z0-9_]*)"#)
            .anchorsMatchLineEndings()
        return Set(source.matches(of: pattern).compactMap { $0.output[1].substring.map(String.init) })
    }

    /// Every `.swift` file under `Sources/<target>`, with the modules it imports.
    static func imports(ofTarget target: String) throws -> [String: Set<String>] {
        let directory = packageRoot.appendingPathComponent("Sources").appendingPathComponent(target)
        guard let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else { return [:] }
        var result: [String: Set<String>] = [:]
        for case let file as URL in files where file.pathExtension == "swift" {
            result[file.path] = try importedModules(of: String(contentsOf: file, encoding: .utf8))
        }
        return result
    }

    static var productTargets: [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: packageRoot.appendingPathComponent("Sources").path))?.sorted() ?? []
    }

    @Test func theImportParserSeesEveryFormOfImport() throws {
        let source = """
            import Foundation
            @preconcurrency import PostgresNIO
            public import NIOCore
              internal import struct Logging.Logger
            @_spi(Testing) package import HTTPTypes
            // import Commented
            let important = 1
            """
        #expect(try Self.importedModules(of: source) == ["Foundation", "PostgresNIO", "NIOCore", "Logging", "HTTPTypes"])
    }

    @Test func onlyTheStoreImportsPostgresNIO() throws {
        #expect(Self.productTargets.contains("TollgateStore") && Self.productTargets.count >= 7, "\(Self.productTargets)")
        var offenders: [String] = []
        for target in Self.productTargets where target != "TollgateStore" {
            for (file, modules) in try Self.imports(ofTarget: target) where modules.contains("PostgresNIO") || modules.contains("_ConnectionPoolModule") {
                offenders.append(file.replacingOccurrences(of: Self.packageRoot.path + "/", with: ""))
            }
        }
        #expect(offenders.isEmpty, "import PostgresNIO outside TollgateStore: \(offenders.sorted())")
        // The Store itself does (so the scan reads real files).
        #expect(try Self.imports(ofTarget: "TollgateStore").values.contains { $0.contains("PostgresNIO") })
    }

    @Test func onlyTheStoreDependsOnPostgresNIOInTheManifest() throws {
        let manifest = try String(contentsOf: Self.packageRoot.appendingPathComponent("Package.swift"), encoding: .utf8)
        // Each target declaration up to the next one; test targets may use PostgreSQL directly (real-database suites).
        let declarations = manifest.components(separatedBy: "\n        .").filter { $0.hasPrefix("target(") || $0.hasPrefix("executableTarget(") }
        let names = try Regex(#"name:\s*"([^"]+)""#)
        var dependents: [String] = []
        for declaration in declarations where declaration.contains(#".product(name: "PostgresNIO""#) {
            guard let name = declaration.firstMatch(of: names)?.output[1].substring else { continue }
            dependents.append(String(name))
        }
        // TollgateTestSupport (under Tests/) holds the throwaway cluster and template databases for the real-PostgreSQL suites.
        #expect(Set(dependents) == ["TollgateStore", "TollgateTestSupport"], "\(dependents)")
        #expect(declarations.count >= 8)
    }

    @Test func coreImportsFoundationAlone() throws {
        let modules = try Self.imports(ofTarget: "TollgateCore").values.reduce(into: Set<String>()) { $0.formUnion($1) }
        #expect(modules == ["Foundation"], "\(modules)")
    }

    /// The tokenizer is a leaf too: the gateway, the CLI and the benchmarks can use it without pulling anything in
    /// (Synchronization, for its `Mutex`, ships with the standard library).
    @Test func tokenizerImportsFoundationAlone() throws {
        let modules = try Self.imports(ofTarget: "TollgateTokenizer").values.reduce(into: Set<String>()) { $0.formUnion($1) }
        #expect(modules.isSubset(of: ["Foundation", "Synchronization"]), "\(modules)")
    }
}
