import Foundation
import Logging
import TollgateCore

/// Backends, products, subscriptions and live keys: what `tollgate apply` manages and the gateway caches.
/// `CatalogStore` is the PostgreSQL implementation.
public protocol CatalogRepository: Sendable {
    /// Everything the gateway needs, read in one go.
    func snapshot(logger: Logger) async throws -> CatalogSnapshot
    /// What `apply` would change, as readable lines (`+ subscription team-a`, `~ backend openai`).
    func plan(_ document: PolicyDocument, logger: Logger) async throws -> [String]
    /// Writes the document's catalog in one transaction (backends replaced; products and subscriptions upserted).
    func apply(_ document: PolicyDocument, logger: Logger) async throws
}

extension CatalogStore: CatalogRepository {}
