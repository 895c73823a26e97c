import Foundation
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `PriceRepository` in memory, by the rules of `PriceStore`: all or nothing, versions never edited, none starting
/// inside a closed month (`periods`).
public final class InMemoryPriceRepository: PriceRepository {
    private let stored = Mutex<[StoredPrice]>([])
    private let periods: InMemoryPeriodRepository

    public init(periods: InMemoryPeriodRepository) { self.periods = periods }

    public func importPrices(_ prices: [ModelPrice], priceList: String, logger: Logger) async throws -> PriceImportSummary {
        for price in prices where !price.problems.isEmpty {
            throw PriceImportError.invalid(.invalidPrice(model: price.model, problems: price.problems))
        }
        let closedThrough = periods.currentClosedThrough
        return try stored.withLock { stored in
            var next = stored
            var summary = PriceImportSummary(added: 0, unchanged: 0)
            for p in prices {
                if let existing = next.first(where: { Self.sameVersion($0.price, p) }) {
                    guard existing.price == p else {
                        throw PriceImportError.conflictingVersion(
                            model: p.model, backend: p.backend, deployment: p.deployment, effectiveFrom: p.effectiveFrom)
                    }
                    summary.unchanged += 1
                    continue
                }
                if let closedThrough, p.effectiveFrom < closedThrough {
                    throw PriceImportError.startsInClosedPeriod(model: p.model, effectiveFrom: p.effectiveFrom, closedThrough: closedThrough)
                }
                next.append(StoredPrice(id: Int64(next.count + 1), price: p, priceList: priceList, effectiveTo: nil))
                summary.added += 1
            }
            stored = next
            return summary
        }
    }

    public func list(logger: Logger) async throws -> [StoredPrice] {
        let sorted = stored.withLock { $0 }.sorted {
            ($0.price.model, $0.price.backend, $0.price.deployment, $0.price.effectiveFrom)
                < ($1.price.model, $1.price.backend, $1.price.deployment, $1.price.effectiveFrom)
        }
        // A version ends where the next of the same model, backend and deployment starts (`model_price_versions`).
        return sorted.enumerated().map { index, version in
            var version = version
            if index + 1 < sorted.count, Self.sameKey(sorted[index + 1].price, version.price) {
                version.effectiveTo = sorted[index + 1].price.effectiveFrom
            }
            return version
        }
    }

    static func sameKey(_ a: ModelPrice, _ b: ModelPrice) -> Bool {
        a.model == b.model && a.backend == b.backend && a.deployment == b.deployment
    }

    static func sameVersion(_ a: ModelPrice, _ b: ModelPrice) -> Bool { sameKey(a, b) && a.effectiveFrom == b.effectiveFrom }
}
