import TollgateCore

/// What applying a policy document to a catalog would change: the readable lines `tollgate apply --dry-run` prints.
/// Pure, so every catalog repository (PostgreSQL, in-memory) plans the same way.
public enum CatalogPlan {
    /// - Returns: `+ backend …`, `~ product …`, `- backend …` lines, backends first, then products, then subscriptions.
    public static func changes(from current: CatalogSnapshot, to document: PolicyDocument) -> [String] {
        var lines: [String] = []
        for backend in document.backends {
            if let existing = current.backends[backend.name] {
                var sortedExisting = existing
                sortedExisting.deployments.sort { $0.name < $1.name }
                var sortedNew = backend
                sortedNew.deployments.sort { $0.name < $1.name }
                if sortedExisting != sortedNew { lines.append("~ backend \(backend.name)") }
            } else {
                lines.append("+ backend \(backend.name) (\(backend.kind.rawValue), \(backend.deployments.count) deployment(s))")
            }
        }
        for name in Set(current.backends.keys).subtracting(document.backends.map(\.name)).sorted() {
            lines.append("- backend \(name)")
        }
        for product in document.products {
            if let existing = current.products[product.name] {
                if existing != product { lines.append("~ product \(product.name)") }
            } else {
                lines.append("+ product \(product.name)")
            }
        }
        for subscription in document.subscriptions {
            if let existing = current.subscriptions[subscription.id] {
                // The file's state applies only while the file owns it (see `CatalogStore.apply`).
                let unchanged = existing.displayName == subscription.displayName && existing.team == subscription.team
                    && existing.costCenter == subscription.costCenter && existing.product == subscription.product
                    && existing.allowedModels == subscription.allowedModels
                    && (existing.stateActor != "config" || existing.state == subscription.state)
                if !unchanged { lines.append("~ subscription \(subscription.id)") }
            } else {
                lines.append("+ subscription \(subscription.id)")
            }
        }
        return lines
    }
}
