import Foundation
import Logging
import Metrics
import Synchronization
import TollgateCore
import TollgateStore

/// What this instance knows of its backends' health: each backend's circuit breaker, and the pool members cooling
/// down after a 429 (for the time the upstream asked, `RetryAfter`). The pools' choice reads it
/// (`ChooseBackendStep`) and each attempt's outcome updates it (`ProxyExchange`). It is per instance, in memory:
/// every instance learns from its own traffic, as APIM's and LiteLLM's routers do.
///
/// Each breaker transition is logged once and counted (`tollgate_backend_breaker_transitions_total`), and the state
/// is a gauge (`tollgate_backend_breaker_state`: 0 closed, 1 half-open, 2 open).
public final class BackendHealth: Sendable {
    /// One member of a pool: a deployment name on a backend.
    struct Member: Hashable, Sendable {
        let backend: String
        let deployment: String
    }

    /// How an attempt ended, for the breaker and the cool-downs.
    enum Outcome: Sendable {
        /// Answered, with anything but a 5xx or a 429.
        case answered
        /// 429: the member is skipped for `wait` (the default cool-down when the upstream named none).
        case throttled(wait: Duration?)
        /// 5xx, connection failure or timeout: counts against the backend's breaker.
        case failed(reason: String)
    }

    /// The wait after a 429 that named none.
    static let defaultCoolDown: Duration = .seconds(5)

    private struct State {
        var breakers: [String: CircuitBreaker] = [:]
        var coolingUntil: [Member: Date] = [:]
    }

    private let state = Mutex(State())
    /// True until a member is first throttled or a backend first fails: while nothing has gone wrong every member
    /// is available and there is nothing to record, so the request path takes no lock.
    private let quiet = Atomic<Bool>(true)
    private let logger: Logger
    private let now: @Sendable () -> Date

    public init(logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) {
        self.logger = logger
        self.now = now
    }

    var currentTime: Date { now() }

    /// Whether `route`'s member may be tried now; when not, the time it comes back (nil when unknown).
    func availability(of route: CatalogSnapshot.Route, spec: CircuitBreakerSpec, at instant: Date) -> (available: Bool, back: Date?) {
        if quiet.load(ordering: .acquiring) { return (true, nil) }
        return state.withLock { Self.availability(of: route, spec: spec, at: instant, in: $0) }
    }

    private static func availability(
        of route: CatalogSnapshot.Route, spec: CircuitBreakerSpec, at instant: Date, in state: State
    ) -> (available: Bool, back: Date?) {
        if let until = coolingUntil(route, at: instant, in: state) { return (false, until) }
        guard let breaker = state.breakers[route.backend] else { return (true, nil) }
        if breaker.isAvailable(at: instant, spec: spec) { return (true, nil) }
        return (false, breaker.state == .open ? breaker.openUntil : nil)
    }

    /// Until when `route`'s member is skipped after a 429; nil when it is not.
    private static func coolingUntil(_ route: CatalogSnapshot.Route, at instant: Date, in state: State) -> Date? {
        guard !state.coolingUntil.isEmpty, let until = state.coolingUntil[Member(backend: route.backend, deployment: route.deployment)],
            until > instant
        else { return nil }
        return until
    }

    /// A request is about to go to `route`'s member: false when it must not (cooling, breaker open, or another
    /// request is the half-open probe).
    func attempt(_ route: CatalogSnapshot.Route, spec: CircuitBreakerSpec, at instant: Date) -> Bool {
        if quiet.load(ordering: .acquiring) { return true }
        let (allowed, transition) = state.withLock { state -> (Bool, CircuitBreaker.Transition?) in
            if Self.coolingUntil(route, at: instant, in: state) != nil { return (false, nil) }
            // A backend that never failed has no breaker yet: nothing to take.
            guard state.breakers[route.backend] != nil else { return (true, nil) }
            return state.breakers[route.backend]!.attempt(at: instant, spec: spec)
        }
        if let transition { report(transition, backend: route.backend) }
        return allowed
    }

    /// What an attempt on `route`'s member came to.
    func record(_ outcome: Outcome, for route: CatalogSnapshot.Route, spec: CircuitBreakerSpec, at instant: Date) {
        if case .answered = outcome {
            // An answer only ever clears state: with none there is nothing to do (and answers are not counted).
            if quiet.load(ordering: .acquiring) { return }
        } else {
            attempts(backend: route.backend, outcome: outcome.label).increment()
        }
        let transition = state.withLock { state -> CircuitBreaker.Transition? in
            switch outcome {
            case .answered:
                if !state.coolingUntil.isEmpty { state.coolingUntil[Member(backend: route.backend, deployment: route.deployment)] = nil }
                return state.breakers[route.backend]?.succeeded(at: instant)
            case .throttled(let wait):
                quiet.store(false, ordering: .releasing)
                let (seconds, attoseconds) = (wait ?? Self.defaultCoolDown).components
                state.coolingUntil[Member(backend: route.backend, deployment: route.deployment)] =
                    instant.addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
                return nil
            case .failed(let reason):
                quiet.store(false, ordering: .releasing)
                return state.breakers[route.backend, default: CircuitBreaker(at: instant)].failed(reason, at: instant, spec: spec)
            }
        }
        if let transition { report(transition, backend: route.backend) }
    }

    private struct CounterKey: Hashable {
        let backend: String
        let outcome: String
    }
    private let counters = MetricHandles<CounterKey, Counter>()

    /// `tollgate_upstream_attempts_total{backend, outcome}` (`throttled`, `failed`: the attempts a pool failed over
    /// from).
    private func attempts(backend: String, outcome: String) -> Counter {
        counters.handle(CounterKey(backend: backend, outcome: outcome)) {
            Counter(label: "tollgate_upstream_attempts_total", dimensions: [("backend", backend), ("outcome", outcome)])
        }
    }

    private func report(_ transition: CircuitBreaker.Transition, backend: String) {
        let metadata: Logger.Metadata = [
            "backend": "\(backend)", "breaker.from": "\(transition.from.rawValue)", "breaker.to": "\(transition.to.rawValue)",
            "breaker.reason": "\(transition.reason)",
        ]
        switch transition.to {
        case .open: logger.warning("Circuit breaker opened: the backend leaves its pools", metadata: metadata)
        case .halfOpen: logger.notice("Circuit breaker half-open: one request probes the backend", metadata: metadata)
        case .closed: logger.notice("Circuit breaker closed: the backend is back in its pools", metadata: metadata)
        }
        Counter(label: "tollgate_backend_breaker_transitions_total", dimensions: [("backend", backend), ("to", transition.to.rawValue)]).increment()
        Gauge(label: "tollgate_backend_breaker_state", dimensions: [("backend", backend)]).record(transition.to.gaugeValue)
    }

    /// The pool's members to try, in order: the lowest priority number first, members of one priority in a random
    /// order drawn by weight (`random(n)` is uniform in `0..<n`); members not available now are left out.
    func candidates(
        _ pool: [CatalogSnapshot.Route], backends: [String: BackendSpec], at instant: Date, random: (Int) -> Int = { Int.random(in: 0..<$0) }
    ) -> [CatalogSnapshot.Route] {
        if quiet.load(ordering: .acquiring) { return Self.weightedOrder(pool, random: random) }
        let available = state.withLock { state in
            pool.filter { route in
                Self.availability(of: route, spec: backends[route.backend]?.circuitBreaker ?? CircuitBreakerSpec(), at: instant, in: state).available
            }
        }
        return Self.weightedOrder(available, random: random)
    }

    /// `members` come as the catalog holds a pool: ordered by priority.
    static func weightedOrder(_ members: [CatalogSnapshot.Route], random: (Int) -> Int) -> [CatalogSnapshot.Route] {
        var ordered: [CatalogSnapshot.Route] = []
        ordered.reserveCapacity(members.count)
        var start = members.startIndex
        while start < members.endIndex {
            var end = start + 1
            while end < members.endIndex && members[end].priority == members[start].priority { end += 1 }
            if end - start == 1 {
                ordered.append(members[start])
            } else {
                var group = Array(members[start..<end])
                while !group.isEmpty {
                    var pick = random(group.reduce(0) { $0 + $1.weight })
                    let index = group.firstIndex { member in
                        if pick < member.weight { return true }
                        pick -= member.weight
                        return false
                    } ?? 0
                    ordered.append(group.remove(at: index))
                }
            }
            start = end
        }
        return ordered
    }

    /// The earliest time one of the pool's members comes back; nil when none has a known time.
    func earliestReturn(of pool: [CatalogSnapshot.Route], backends: [String: BackendSpec], at instant: Date) -> Date? {
        pool.compactMap { availability(of: $0, spec: backends[$0.backend]?.circuitBreaker ?? CircuitBreakerSpec(), at: instant).back }.min()
    }

    /// Each backend's breaker and cooling members, for `GET /admin/v1/backends`.
    public func report(backends: [String], at instant: Date) -> [BackendHealthReport] {
        state.withLock { state in
            backends.sorted().map { name in
                let breaker = state.breakers[name]
                let cooling = state.coolingUntil.filter { $0.key.backend == name && $0.value > instant }
                    .map { BackendHealthReport.Cooling(deployment: $0.key.deployment, until: $0.value) }
                    .sorted { $0.deployment < $1.deployment }
                return BackendHealthReport(
                    backend: name, breaker: breaker?.state.rawValue ?? "closed", reason: breaker?.reason, since: breaker?.since,
                    openUntil: breaker?.openUntil, cooling: cooling)
            }
        }
    }
}

/// One backend's health as this instance sees it.
public struct BackendHealthReport: Sendable, Hashable {
    public struct Cooling: Sendable, Hashable {
        public var deployment: String
        public var until: Date
    }
    public var backend: String
    /// `closed`, `open` or `half_open`.
    public var breaker: String
    /// Why the breaker last moved; nil if it never did.
    public var reason: String?
    /// When it last moved; nil if it never did.
    public var since: Date?
    public var openUntil: Date?
    /// Members skipped after a 429, until when.
    public var cooling: [Cooling]
}

extension BackendHealth.Outcome {
    var label: String {
        switch self {
        case .answered: "answered"
        case .throttled: "throttled"
        case .failed: "failed"
        }
    }
}

extension CircuitBreaker.State {
    var gaugeValue: Double {
        switch self {
        case .closed: 0
        case .halfOpen: 1
        case .open: 2
        }
    }
}
