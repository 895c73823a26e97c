import Synchronization
import TollgateStore

/// `LeaderElection` within one process: one lease per key, notifications posted by hand, and a way to cut the leader's
/// session as a network failure would.
public final class InMemoryLeaderElection: LeaderElection {
    private struct Leader {
        var id: Int
        var channel: NotificationChannel
        var onChange: @Sendable () -> Void
        var lost: AsyncStream<Void>.Continuation
    }
    private let leaders = Mutex<[Int: Leader]>([:])
    private let nextID = Atomic<Int>(0)

    public init() {}

    /// Whether someone leads under `key` now.
    public func isHeld(key: Int) -> Bool { leaders.withLock { $0[key] != nil } }

    /// Delivers one notification on `channel` to every leader listening on it.
    public func post(_ channel: NotificationChannel) {
        for leader in leaders.withLock({ Array($0.values) }) where leader.channel == channel { leader.onChange() }
    }

    /// Ends the session of the leader under `key`: its `lead` cancels its body and throws `LeaderSessionLost`.
    public func cutSession(key: Int) {
        leaders.withLock { $0[key] }?.lost.finish()
    }

    public func lead(
        key: Int, heartbeatInterval: Duration, listeningTo channel: NotificationChannel, onChange: @escaping @Sendable () -> Void,
        _ body: @escaping @Sendable () async throws -> Void
    ) async throws -> Bool {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (lost, continuation) = AsyncStream<Void>.makeStream()
        let acquired = leaders.withLock { leaders -> Bool in
            guard leaders[key] == nil else { return false }
            leaders[key] = Leader(id: id, channel: channel, onChange: onChange, lost: continuation)
            return true
        }
        guard acquired else { return false }
        defer {
            leaders.withLock { leaders in
                if leaders[key]?.id == id { leaders[key] = nil }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await body() }
            group.addTask {
                for await _ in lost {}
                if !Task.isCancelled { throw LeaderSessionLost() }
            }
            try await group.next()
            group.cancelAll()
        }
        return true
    }
}
