import Foundation
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `PeriodRepository` in memory: months close in order, once, after they end.
public final class InMemoryPeriodRepository: PeriodRepository {
    private let closedThroughValue = Mutex<Date?>(nil)

    public init() {}

    var currentClosedThrough: Date? { closedThroughValue.withLock { $0 } }

    public func close(_ period: BillingPeriod, closedBy: String, now: Date, logger: Logger) async throws {
        guard BillingPeriod.containing(period.start, kind: .monthly) == period else { throw PeriodCloseError.notMonthly(period) }
        let label = period.monthLabel
        guard period.end <= now else { throw PeriodCloseError.notEnded(period: label, endsAt: period.end) }
        try closedThroughValue.withLock { closedThrough in
            if let current = closedThrough {
                if period.end <= current { throw PeriodCloseError.alreadyClosed(period: label, closedThrough: current) }
                if period.start != current {
                    throw PeriodCloseError.outOfOrder(period: label, nextToClose: BillingPeriod.containing(current, kind: .monthly).monthLabel)
                }
            }
            closedThrough = period.end
        }
    }

    public func closedThrough(logger: Logger) async throws -> Date? { currentClosedThrough }
}

/// `CommitmentRepository` in memory: one amount per backend and month, a closed month's frozen.
public final class InMemoryCommitmentRepository: CommitmentRepository {
    private let stored = Mutex<[String: [Date: PTUCommitment]]>([:])
    private let periods: InMemoryPeriodRepository

    public init(periods: InMemoryPeriodRepository) { self.periods = periods }

    public func set(_ commitment: PTUCommitment, logger: Logger) async throws {
        if let closedThrough = periods.currentClosedThrough, commitment.effectiveFrom < closedThrough {
            throw DomainRuleError.commitmentFrozen
        }
        stored.withLock { $0[commitment.backend, default: [:]][commitment.effectiveFrom] = commitment }
    }

    public func commitments(in period: BillingPeriod, logger: Logger) async throws -> [PTUCommitment] {
        stored.withLock { byBackend in
            byBackend.keys.sorted().compactMap { backend in
                // The latest row starting at or before the month is in force (a zero amount ends a commitment).
                let inForce = byBackend[backend]!.filter { $0.key <= period.start }.max { $0.key < $1.key }?.value
                return inForce.flatMap { $0.monthlyAmount > 0 ? $0 : nil }
            }
        }
    }
}
