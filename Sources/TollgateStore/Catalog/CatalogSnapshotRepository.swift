import Logging

/// Where the gateway's in-memory catalog is loaded from: the whole of routes, products, subscriptions and live keys, in
/// one consistent read.
public protocol CatalogSnapshotRepository: Sendable {
    /// Reads the current catalog.
    /// - Throws: `CatalogError` when a stored row cannot be understood (a backend kind this version does not know),
    ///   or the database's error.
    func snapshot(logger: Logger) async throws -> CatalogSnapshot
}

/// A catalog row this version cannot serve from. The load fails as a whole: a partial catalog could route a model to
/// the wrong place (an unknown backend kind is never read as `mock`).
public enum CatalogError: Error, Equatable, CustomStringConvertible {
    /// The `backends` row `backend` has a `kind` this version has no dialect for (written by a newer version, or by hand).
    case unknownBackendKind(backend: String, kind: String)

    public var description: String {
        switch self {
        case .unknownBackendKind(let backend, let kind): "Backend '\(backend)' has kind '\(kind)', which this version of Tollgate does not know."
        }
    }
}

extension CatalogStore: CatalogSnapshotRepository {}
