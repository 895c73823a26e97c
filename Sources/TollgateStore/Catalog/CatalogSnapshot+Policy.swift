import Foundation
import TollgateCore

extension CatalogSnapshot {
    /// The catalog `CatalogStore.apply(document)` leaves behind on an empty database, with `keys` as its live keys: what
    /// in-memory repositories serve, so that tests without PostgreSQL see the same catalog the gateway would load.
    public init(document: PolicyDocument, keys: [Key] = [], loadedAt: Date = Date()) {
        self.init()
        for var backend in document.backends {
            backend.deployments.sort { $0.name < $1.name }  // as loaded: deployments come ordered by name
            backends[backend.name] = backend
        }
        routes = Self.pools(of: document.backends)
        for product in document.products { products[product.name] = product }
        for spec in document.subscriptions {
            subscriptions[spec.id] = Subscription(
                id: spec.id, displayName: spec.displayName, team: spec.team, costCenter: spec.costCenter, product: spec.product,
                state: spec.state, stateReason: nil, stateActor: "config", allowedModels: spec.allowedModels)
        }
        for key in keys { self.keys[key.hash] = key }
        self.loadedAt = loadedAt
    }
}

extension CatalogSnapshot {
    /// The pools the backends' deployments make, members ordered as loaded: by priority, then backend name.
    public static func pools(of backends: [BackendSpec]) -> [String: [Route]] {
        var pools: [String: [Route]] = [:]
        for backend in backends {
            for deployment in backend.deployments {
                pools[deployment.name, default: []].append(
                    Route(backend: backend.name, deployment: deployment.name, model: deployment.model, priority: deployment.priority, weight: deployment.weight))
            }
        }
        return pools.mapValues { $0.sorted { ($0.priority, $0.backend) < ($1.priority, $1.backend) } }
    }
}

extension CatalogSnapshot.Key {
    /// A live key: `hash` is `KeyStore.hash` of the key's text.
    public init(subscription: SubscriptionID, slot: String, hash: [UInt8], id: UUID = UUID()) {
        self.id = id
        self.subscription = subscription
        self.slot = slot
        self.hash = hash
    }
}
