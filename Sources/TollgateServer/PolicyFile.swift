import Foundation
import TollgateCore
import TollgateStore
import Yams

/// Reads `tollgate.yaml`. Every error names the file, the line and column, and the field, so a malformed
/// configuration is fixed in one look: `tollgate.yaml:14:14: subscriptions[1].product: unknown product 'gold'`.
public enum PolicyFile {
    public static func load(path: String) throws(PolicyFileError) -> PolicyDocument {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw PolicyFileError(file: path, line: nil, column: nil, field: nil, message: "cannot read the file (\(error.localizedDescription))")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(PolicyFileError) -> PolicyDocument {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { return PolicyDocument() }
            root = node
        } catch let error as YamlError {
            throw syntaxError(error, file: file)
        } catch {
            throw PolicyFileError(file: file, line: nil, column: nil, field: nil, message: "\(error)")
        }
        let document: PolicyDocument
        do {
            document = try YAMLDecoder().decode(PolicyDocument.self, from: root)
        } catch let error as DecodingError {
            throw decodingError(error, root: root, file: file)
        } catch {
            throw PolicyFileError(file: file, line: nil, column: nil, field: nil, message: "\(error)")
        }
        if let problem = (document.problems() + catalogProblems(document)).first {
            let node = locate(problem.path, in: root)
            throw PolicyFileError(file: file, line: node?.mark?.line, column: node?.mark?.column, field: problem.pathText, message: problem.message)
        }
        return document
    }

    /// Every semantic problem, not just the first (for `apply --dry-run` and the admin API).
    public static func problems(in document: PolicyDocument) -> [PolicyProblem] { document.problems() + catalogProblems(document) }

    /// `price_catalogs` entries that name no shipped catalog (the domain does not know which ship; the binary does).
    static func catalogProblems(_ document: PolicyDocument) -> [PolicyProblem] {
        let shipped = PriceCatalog.names()
        return document.priceCatalogs.enumerated().compactMap { index, name in
            shipped.contains(name)
                ? nil
                : PolicyProblem(
                    path: [.key("price_catalogs"), .index(index)],
                    message: "unknown price catalog '\(name)'; shipped: \(shipped.joined(separator: ", "))")
        }
    }

    private static func syntaxError(_ error: YamlError, file: String) -> PolicyFileError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return PolicyFileError(file: file, line: mark.line, column: mark.column, field: nil, message: "YAML syntax: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return PolicyFileError(file: file, line: context.mark.line, column: context.mark.column, field: nil,
                                   message: "duplicate key(s) \(duplicates.joined(separator: ", "))")
        default:
            return PolicyFileError(file: file, line: nil, column: nil, field: nil, message: "YAML: \(error)")
        }
    }

    private static func decodingError(_ error: DecodingError, root: Node) -> (path: [PolicyPathComponent], message: String) {
        func components(_ path: [any CodingKey]) -> [PolicyPathComponent] {
            path.map { key in key.intValue.map(PolicyPathComponent.index) ?? .key(key.stringValue) }
        }
        switch error {
        case .keyNotFound(let key, let context):
            return (components(context.codingPath + [key]), "is required")
        case .typeMismatch(let type, let context):
            return (components(context.codingPath), "expected \(describe(type))")
        case .valueNotFound(let type, let context):
            return (components(context.codingPath), "expected \(describe(type)), found nothing")
        case .dataCorrupted(let context):
            let path = components(context.codingPath)
            var message = context.debugDescription
            if message.hasPrefix("Cannot initialize") || message.contains("from invalid") {
                let found = locate(path, in: root)?.string.map { "'\($0)' " } ?? ""
                if case .key(let field) = path.last, let allowed = allowedValues[field] {
                    message = "\(found)is not allowed; use one of: \(allowed)"
                } else {
                    message = "\(found)is not an allowed value"
                }
            }
            return (path, message)
        @unknown default:
            return ([], "\(error)")
        }
    }

    private static func decodingError(_ error: DecodingError, root: Node, file: String) -> PolicyFileError {
        let (path, message) = decodingError(error, root: root)
        // For a missing field, point at the mapping that lacks it.
        let node = locate(path, in: root) ?? locate(Array(path.dropLast()), in: root)
        let field = PolicyProblem(path: path, message: message).pathText
        return PolicyFileError(file: file, line: node?.mark?.line, column: node?.mark?.column, field: field.isEmpty ? nil : field, message: message)
    }

    /// The choices of the enumerated fields, for error messages.
    static let allowedValues: [String: String] = [
        "kind": BackendKind.allCases.map(\.rawValue).joined(separator: ", "),
        "state": SubscriptionState.allCases.map(\.rawValue).joined(separator: ", "),
        "quota_period": PeriodKind.allCases.map(\.rawValue).joined(separator: ", "),
    ]

    private static func describe(_ type: Any.Type) -> String {
        if type == Int.self { return "a whole number" }
        if type == String.self { return "text" }
        if type == Bool.self { return "true or false" }
        let name = String(describing: type)
        if name.hasPrefix("Array") { return "a list" }
        if name.hasPrefix("Dictionary") || name.hasSuffix("Spec") || name.hasSuffix("Limits") || name.hasSuffix("Document") { return "a mapping" }
        return "a \(name)"
    }

    /// The YAML node at `path`, for its line and column. For an unknown field, the key's own node.
    static func locate(_ path: [PolicyPathComponent], in root: Node) -> Node? {
        var node: Node? = root
        for component in path {
            guard let current = node else { return nil }
            switch component {
            case .key(let key):
                guard let mapping = current.mapping else { return nil }
                if let value = mapping[key] {
                    node = value
                } else {
                    // The key itself (unknown-field errors name a key that has no decoded value).
                    node = mapping.keys.first { $0.string == key }
                }
            case .index(let index):
                guard let sequence = current.sequence, index < sequence.count else { return nil }
                node = sequence[index]
            }
        }
        return node
    }
}

/// A configuration error, printed as `FILE:LINE:COLUMN: FIELD: MESSAGE`.
public struct PolicyFileError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int?
    public var column: Int?
    public var field: String?
    public var message: String

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        return "\(location): \(field.map { "\($0): " } ?? "")\(message)"
    }
}
