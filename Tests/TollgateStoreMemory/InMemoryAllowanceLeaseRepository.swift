import Foundation
import Logging
import Synchronization
import TollgateStore

/// `AllowanceLeaseRepository` in memory: what `admission_allowances` and `tollgate_lease_allowance` do, for the
/// instances of one test process. `failing` makes every call throw, as an unreachable database would.
public final class InMemoryAllowanceLeaseRepository: AllowanceLeaseRepository {
    struct Key: Hashable { let kind: AllowanceSlice.Kind, scope: String, window: Date }
    struct Unreachable: Error {}
    private let granted = Mutex<[Key: Int]>([:])
    private let down = Mutex(false)

    public init() {}

    /// While true every call fails.
    public var failing: Bool {
        get { down.withLock { $0 } }
        set { down.withLock { $0 = newValue } }
    }

    /// What has been granted for a window so far.
    public func granted(_ kind: AllowanceSlice.Kind, scope: String, window: Date) -> Int {
        granted.withLock { $0[Key(kind: kind, scope: scope, window: window)] ?? 0 }
    }

    public func lease(_ slices: [AllowanceSlice], logger: Logger) async throws -> [(granted: Int, left: Int)] {
        if failing { throw Unreachable() }
        return granted.withLock { granted in
            slices.map { slice in
                let key = Key(kind: slice.kind, scope: slice.scope, window: slice.window)
                let cut = min(max(slice.amount, 0), max(slice.allowance - (granted[key] ?? 0), 0))
                granted[key, default: 0] += cut
                return (cut, max(slice.allowance - granted[key]!, 0))
            }
        }
    }

    public func giveBack(_ slices: [AllowanceSlice], logger: Logger) async throws {
        if failing { throw Unreachable() }
        granted.withLock { granted in
            for slice in slices {
                let key = Key(kind: slice.kind, scope: slice.scope, window: slice.window)
                if let held = granted[key] { granted[key] = max(held - slice.amount, 0) }
            }
        }
    }

    public func purge(before instant: Date, logger: Logger) async throws {
        if failing { throw Unreachable() }
        granted.withLock { $0 = $0.filter { $0.key.window >= instant } }
    }
}
