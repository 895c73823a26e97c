import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import TollgateCore
import TollgateStore

/// This instance's slices of the shared minute limits' allowances (`AllowanceLeaseRepository`), drawn on by
/// `SharedMinuteLimit` on the request path without I/O.
///
/// A slice is `sliceFraction` of the limit (at least the request that needs it). The keeper (`AllowanceLeaseKeeper`)
/// tops up a slice that is running low before a request needs it, and gives back one that has not been drawn on for
/// `idleGiveBack`, so tokens do not sit unused in one instance while another is refused. A request that finds no
/// slice large enough waits for one lease (one round trip, once per slice, not per request).
///
/// If PostgreSQL cannot be reached, the instance keeps admitting on what it holds; beyond that each product's
/// `admission_failure_mode` decides (`SharedMinuteLimit`). `degraded` says so, for `/readyz` and the metrics.
public final class AllowanceLeases: Sendable {
    struct Key: Hashable, Sendable {
        let kind: AllowanceSlice.Kind
        let scope: String
        let window: Date
    }

    struct Holding: Sendable {
        var allowance: Int
        /// Leased and not reserved yet (negative: used beyond what was reserved, owed from the next slice).
        var local: Int = 0
        /// The window's allowance is used up: the last lease got less than asked.
        var exhausted = false
        /// What the window had left after this instance's last lease.
        var leftAfterLastLease: Int
        var lastDrawn: Date
        /// Strict: lease exactly what each request needs (no slice held).
        var strict: Bool
        /// When this instance last leased for it: an exhausted window is asked again a second later, since other
        /// instances give back what they do not use.
        var lastLease: Date = .distantPast
    }

    let repository: any AllowanceLeaseRepository
    /// The share of a limit leased at a time.
    let sliceFraction: Double
    /// A slice not drawn on for this long is given back.
    let idleGiveBack: TimeInterval
    let logger: Logger
    private let holdings = Mutex<[Key: Holding]>([:])
    /// Leases in flight, by limit: a request that needs one while another is being cut waits for that one.
    private let pending = Mutex<[Key: Task<Void, Never>]>([:])
    /// The last lease or give-back asked for: they run one at a time, in the order asked, so their results are
    /// applied in the order PostgreSQL produced them (two leases applied out of order would leave
    /// `leftAfterLastLease` at the older, larger figure, and the `x-ratelimit-remaining-*` headers too high).
    private let sequence = Mutex<Task<Void, Never>?>(nil)
    private let unreachable = Atomic<Bool>(false)
    /// When a lease last failed (as seconds since 1970): while unreachable, a lease is tried at most once a second.
    private let lastFailure = Atomic<Int64>(0)
    private let degradedGauge = Gauge(label: "tollgate_admission_degraded")
    private let leaseCounter = Counter(label: "tollgate_admission_leases_total")
    private let unleasedCounter = Counter(label: "tollgate_admission_unleased_total")

    /// The clock the keeper's idle test reads (the keeper's own).
    let now: @Sendable () -> Date

    public init(
        repository: any AllowanceLeaseRepository, sliceFraction: Double = 0.1, idleGiveBack: TimeInterval = 1, logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.repository = repository
        self.sliceFraction = sliceFraction
        self.idleGiveBack = idleGiveBack
        self.logger = logger
        self.now = now
    }

    /// True while the last lease or give-back failed: the minute limits run on what this instance holds.
    public var degraded: Bool { unreachable.load(ordering: .relaxed) }

    /// Whether a request should wait for a lease now: always while PostgreSQL answers; once a second while it does not,
    /// so an outage costs one failed attempt a second, not one per request.
    func mayLease(at instant: Date) -> Bool {
        !degraded || Int64(instant.timeIntervalSince1970) > lastFailure.load(ordering: .relaxed)
    }

    static func window(of instant: Date) -> Date { Date(timeIntervalSince1970: (instant.timeIntervalSince1970 / 60).rounded(.down) * 60) }

    func sliceSize(allowance: Int, need: Int, strict: Bool) -> Int {
        strict ? need : max(need, Int((Double(allowance) * sliceFraction).rounded(.up)))
    }

    enum Draw { case taken(remaining: Int), needLease, exhausted }

    /// Takes `amount` from this instance's slice for `key`, without I/O.
    func draw(_ amount: Int, key: Key, allowance: Int, strict: Bool, at instant: Date) -> Draw {
        holdings.withLock { holdings in
            var holding = holdings[key] ?? Holding(allowance: allowance, leftAfterLastLease: allowance, lastDrawn: instant, strict: strict)
            holding.allowance = allowance
            holding.strict = strict
            defer { holdings[key] = holding }
            if holding.local >= amount {
                holding.local -= amount
                holding.lastDrawn = instant
                return .taken(remaining: holding.leftAfterLastLease + holding.local)
            }
            return holding.exhausted ? .exhausted : .needLease
        }
    }

    /// What `draw` would answer, without taking anything.
    func peek(_ amount: Int, key: Key) -> Draw {
        holdings.withLock { holdings in
            guard let holding = holdings[key] else { return .needLease }
            if holding.local >= amount { return .taken(remaining: holding.leftAfterLastLease + holding.local) }
            return holding.exhausted ? .exhausted : .needLease
        }
    }

    /// What is left of the window's allowance as this instance last learnt it (its own slice included); nil when it
    /// holds nothing for it.
    func remaining(key: Key) -> Int? {
        holdings.withLock { holdings in holdings[key].map { max(0, $0.leftAfterLastLease + $0.local) } }
    }

    /// Admits `amount` without a lease (PostgreSQL unreachable, product failing open): counted, not limited.
    func admitUnleased(_ amount: Int) {
        unleasedCounter.increment(by: amount)
    }

    /// Puts back into the slice what a reservation did not use (or takes more, when it used more than reserved).
    func adjust(_ change: Int, key: Key) {
        holdings.withLock { holdings in
            guard holdings[key] != nil else { return }
            holdings[key]!.local += change
            if change > 0 { holdings[key]!.exhausted = false }
        }
    }

    /// Leases enough for a request of `amount` (the work a waiting request runs before it is admitted). Requests that
    /// wait at once for the same limit share one lease (strict ones each lease their own need).
    func acquire(_ amount: Int, key: Key, allowance: Int, strict: Bool, at instant: Date) async {
        let lease: Task<Void, Never> = pending.withLock { pending in
            if !strict, let inFlight = pending[key] { return inFlight }
            let have = holdings.withLock { $0[key]?.local ?? 0 }
            let want = sliceSize(allowance: allowance, need: amount - have, strict: strict)
            let slice = AllowanceSlice(kind: key.kind, scope: key.scope, window: key.window, allowance: allowance, amount: want)
            let task = Task {
                await self.lease([(key, slice)], at: instant)
                _ = self.pending.withLock { $0.removeValue(forKey: key) }
            }
            if !strict { pending[key] = task }
            return task
        }
        await lease.value
    }

    /// Runs `work` after every lease and give-back asked for before it.
    private func inSequence(_ work: @escaping @Sendable () async -> Void) async {
        let task = sequence.withLock { tail -> Task<Void, Never> in
            let previous = tail
            let task = Task {
                await previous?.value
                await work()
            }
            tail = task
            return task
        }
        await task.value
    }

    private func lease(_ requests: [(Key, AllowanceSlice)], at instant: Date) async {
        guard !requests.isEmpty else { return }
        await inSequence { await self.leaseNow(requests, at: instant) }
    }

    private func leaseNow(_ requests: [(Key, AllowanceSlice)], at instant: Date) async {
        do {
            let results = try await repository.lease(requests.map(\.1), logger: logger)
            leaseCounter.increment(by: requests.count)
            markReachable(true)
            holdings.withLock { holdings in
                for ((key, slice), result) in zip(requests, results) {
                    var holding = holdings[key] ?? Holding(
                        allowance: slice.allowance, leftAfterLastLease: result.left, lastDrawn: .distantPast, strict: false)
                    holding.local += result.granted
                    // A slice just cut counts as drawn on now: the keeper must not give it back before the request
                    // that waited for it has drawn (however long the round trip took).
                    holding.lastDrawn = max(holding.lastDrawn, now())
                    holding.leftAfterLastLease = result.left
                    holding.exhausted = result.granted < slice.amount
                    holding.lastLease = instant
                    holdings[key] = holding
                }
            }
        } catch {
            lastFailure.store(Int64(instant.timeIntervalSince1970), ordering: .relaxed)
            markReachable(false)
            logger.debug("Allowance lease failed; admitting on what this instance holds", metadata: ["error": "\(String(reflecting: type(of: error)))"])
        }
    }

    private func markReachable(_ reachable: Bool) {
        let was = unreachable.exchange(!reachable, ordering: .relaxed)
        guard was == reachable else { return }  // a transition
        degradedGauge.record(reachable ? 0 : 1)
        if reachable {
            logger.notice("Shared limits: PostgreSQL reachable again; leasing resumed")
        } else {
            logger.warning("Shared limits: PostgreSQL unreachable; each limit runs on what this instance holds, then its product's admission_failure_mode applies")
        }
    }

    /// One round of upkeep: top up slices running low that are in use, give back idle ones, forget past windows.
    func maintain(at instant: Date) async {
        let window = Self.window(of: instant)
        var topUps: [(Key, AllowanceSlice)] = []
        var giveBacks: [AllowanceSlice] = []
        holdings.withLock { holdings in
            for (key, holding) in holdings {
                if key.window < window {
                    holdings[key] = nil  // a past minute: its slice is worth nothing now
                    continue
                }
                if holding.exhausted && instant.timeIntervalSince(holding.lastLease) >= 1 { holdings[key]!.exhausted = false }
                let idle = instant.timeIntervalSince(holding.lastDrawn) >= idleGiveBack
                if idle && holding.local > 0 {
                    giveBacks.append(AllowanceSlice(kind: key.kind, scope: key.scope, window: key.window, allowance: holding.allowance, amount: holding.local))
                    holdings[key]!.local = 0
                    holdings[key]!.exhausted = false
                } else if !idle && !holding.strict && !holding.exhausted {
                    let slice = sliceSize(allowance: holding.allowance, need: 1, strict: false)
                    if holding.local < slice / 2 {
                        topUps.append((key, AllowanceSlice(kind: key.kind, scope: key.scope, window: key.window, allowance: holding.allowance, amount: slice)))
                    }
                }
            }
        }
        await lease(topUps, at: instant)
        await giveBack(giveBacks)
    }

    /// Gives back everything this instance holds (at shutdown).
    func giveBackAll() async {
        let all = holdings.withLock { holdings -> [AllowanceSlice] in
            defer { holdings = [:] }
            return holdings.compactMap { key, holding in
                holding.local > 0
                    ? AllowanceSlice(kind: key.kind, scope: key.scope, window: key.window, allowance: holding.allowance, amount: holding.local) : nil
            }
        }
        await giveBack(all)
    }

    private func giveBack(_ slices: [AllowanceSlice]) async {
        guard !slices.isEmpty else { return }
        await inSequence {
            do {
                try await self.repository.giveBack(slices, logger: self.logger)
            } catch {
                self.markReachable(false)
            }
        }
    }

    func purge(before instant: Date) async {
        try? await repository.purge(before: instant, logger: logger)
    }
}

/// Keeps this instance's allowance slices topped up and gives back idle ones, off the request path; gives back
/// everything at shutdown and forgets windows older than an hour.
public struct AllowanceLeaseKeeper: Service {
    let leases: AllowanceLeases
    let interval: Duration
    let now: @Sendable () -> Date

    public init(leases: AllowanceLeases, interval: Duration = .milliseconds(200), now: @escaping @Sendable () -> Date = { Date() }) {
        self.leases = leases
        self.interval = interval
        self.now = now
    }

    public func run() async throws {
        var lastPurge = Date.distantPast
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let instant = now()
            await leases.maintain(at: instant)
            if instant.timeIntervalSince(lastPurge) >= 600 {
                await leases.purge(before: instant.addingTimeInterval(-3_600))
                lastPurge = instant
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
        await leases.giveBackAll()
    }
}
