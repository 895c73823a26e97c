import Foundation
import Logging
import TollgateCore

/// Backends, products, subscriptions and live keys: what `tollgate apply` manages (the gateway's cache reads only the
/// snapshot, `CatalogSnapshotRepository`). `CatalogStore` is the PostgreSQL implementation.
public protocol CatalogRepository: CatalogSnapshotRepository {
    /// What `apply` would change, as readable lines (`+ subscription team-a`, `~ backend openai`).
    func plan(_ document: PolicyDocument, logger: Logger) async throws -> [String]
    /// Writes the document's catalog in one transaction (backends replaced; products and subscriptions upserted).
    func apply(_ document: PolicyDocument, logger: Logger) async throws
}

extension CatalogStore: CatalogRepository {}
