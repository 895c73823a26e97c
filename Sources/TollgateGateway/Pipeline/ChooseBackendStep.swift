import Foundation
import Logging
import NIOCore
import TollgateCore
import TollgateStore

/// Reads the request body and chooses where it goes: the pool named by an Azure path's deployment or the body's
/// `model`, the member of it to try (`BackendHealth.candidates`: the lowest priority number with an available member,
/// by weight within it), and that backend kind's dialect. Run again after a failed attempt (`GatewayPipeline.reroute`),
/// it takes the next member still available, with the body as the client sent it.
///
/// Reads `request.call`, `request.body` and `request.catalog`; writes `request.choice`. Refuses with 400
/// `invalid_request` (not a JSON object, no model), 404 `model_not_found`, or — when no member of a pool can take the
/// request — 429 `no_backend_available` with `Retry-After` at the earliest return of one (503 when none is known).
struct ChooseBackendStep: GatewayStep {
    let health: BackendHealth

    init(health: BackendHealth = BackendHealth(logger: Logger(label: "tollgate.backends"))) { self.health = health }

    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        if var choice = request.choice {
            try failOver(&choice, catalog: try request.required(request.catalog))
            request.body = ByteBuffer(bytes: choice.parsedBytes)
            request.choice = choice
            return .next
        }
        let call = try request.required(request.call)
        let catalog = try request.required(request.catalog)
        var bytes = Array(request.body.readableBytesView)
        guard var json = JSONObjectReader(document: bytes) else {
            throw GatewayError.invalidRequest("The request body must be a JSON object.")
        }
        var rewritten = false
        if json.hasEscapedKeys, let normalized = Self.normalizedJSON(bytes), let reader = JSONObjectReader(document: normalized) {
            // A key spelled with escapes (`"mod\u0065l"`) would hide it from a byte-level reader: forward the body
            // re-serialized, with plain keys, so the upstream reads exactly what the gateway read.
            bytes = normalized
            json = reader
            rewritten = true
        }
        let requestedModel = json.string("model")
        guard let routeName = call.deployment ?? requestedModel, !routeName.isEmpty else {
            throw GatewayError.invalidRequest("The request must name a model (`model`).", param: "model")
        }
        guard let pool = catalog.routes[routeName], let first = pool.first, let backend = catalog.backends[first.backend] else {
            throw GatewayError.unknownDeployment(routeName)
        }
        if rewritten { request.body = ByteBuffer(bytes: bytes) }
        var choice = BackendChoice(
            route: first, backend: backend, dialect: backend.kind.dialect, json: json,
            streamed: json.bool("stream") ?? false, forwardedBytes: bytes, parsedBytes: bytes, pool: pool, remaining: [])
        if choice.failsOver {
            // The weighted draw uses the request id's random bits (UUIDv7): no system call per request.
            var generator = SplitMix64(seed: request.requestID)
            choice.remaining = health.candidates(pool, backends: catalog.backends, at: health.currentTime) { Int(generator.next() % UInt64($0)) }
            choice.attempt = 0
            try failOver(&choice, catalog: catalog)
        }
        request.choice = choice
        return .next
    }

    /// Moves `choice` to the next member of its pool that may be tried now.
    private func failOver(_ choice: inout BackendChoice, catalog: CatalogSnapshot) throws(GatewayError) {
        let instant = health.currentTime
        while !choice.remaining.isEmpty {
            let route = choice.remaining.removeFirst()
            guard let backend = catalog.backends[route.backend] else { continue }
            guard health.attempt(route, spec: backend.circuitBreaker, at: instant) else { continue }
            choice.route = route
            choice.backend = backend
            choice.dialect = backend.kind.dialect
            choice.forwardedBytes = choice.parsedBytes
            choice.injectedUsage = false
            choice.attempt += 1
            return
        }
        throw GatewayError.noBackendAvailable(
            choice.route.deployment, back: health.earliestReturn(of: choice.pool, backends: catalog.backends, at: instant), now: instant)
    }

    /// The document re-serialized by Foundation (keys without escapes), or nil if it is not a JSON object.
    static func normalizedJSON(_ bytes: [UInt8]) -> [UInt8]? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
            let data = try? JSONSerialization.data(withJSONObject: object)
        else { return nil }
        return Array(data)
    }
}

/// A small, fast pseudo-random generator (SplitMix64), seeded from a request id: enough to spread requests over a
/// pool's weights.
struct SplitMix64 {
    private var state: UInt64

    init(seed id: UUID) {
        let bytes = id.uuid
        state = [bytes.8, bytes.9, bytes.10, bytes.11, bytes.12, bytes.13, bytes.14, bytes.15].reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
