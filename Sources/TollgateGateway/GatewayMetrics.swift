import Metrics
import Synchronization

/// Metric handles, made once per label set: asking the metrics factory for them on every request costs a lock and
/// a lookup in the factory each time. One per gateway, built by the composition root (no process-wide singleton).
public final class GatewayMetrics: Sendable {
    public init() {}

    struct Series {
        let requests: Counter
        let duration: Timer
        let promptTokens: Counter
        let completionTokens: Counter
    }
    struct Key: Hashable {
        let route: String
        let backend: String
        let model: String
        let status: Int
    }
    private let series = MetricHandles<Key, Series>()
    private struct PoolKey: Hashable {
        let deployment: String
        let overflow: Bool
    }
    private let pools = MetricHandles<PoolKey, Counter>()

    /// `tollgate_pool_requests_total{deployment, served}`: requests a pool served with a member of its first
    /// priority (`served="first"`) or of a later one (`served="overflow"`). Its rate by hour is the spill-over rate.
    func poolRequests(deployment: String, overflow: Bool) -> Counter {
        pools.handle(PoolKey(deployment: deployment, overflow: overflow)) {
            Counter(label: "tollgate_pool_requests_total", dimensions: [("deployment", deployment), ("served", overflow ? "overflow" : "first")])
        }
    }

    func series(route: String, backend: String, model: String, status: Int) -> Series {
        series.handle(Key(route: route, backend: backend, model: model, status: status)) {
            let dimensions = [("route", route), ("backend", backend), ("model", model)]
            return Series(
                requests: Counter(label: "tollgate_requests_total", dimensions: dimensions + [("status", "\(status)")]),
                duration: Timer(label: "tollgate_request_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds),
                promptTokens: Counter(label: "tollgate_tokens_total", dimensions: dimensions + [("kind", "prompt")]),
                completionTokens: Counter(label: "tollgate_tokens_total", dimensions: dimensions + [("kind", "completion")]))
        }
    }
}

/// Metric handles by label set, each made once: the factory is asked only the first time a label set is seen.
final class MetricHandles<Key: Hashable & Sendable, Handle: Sendable>: Sendable {
    private let handles = Mutex<[Key: Handle]>([:])

    func handle(_ key: Key, make: () -> Handle) -> Handle {
        if let existing = handles.withLock({ $0[key] }) { return existing }
        let made = make()
        handles.withLock { $0[key] = made }
        return made
    }
}
