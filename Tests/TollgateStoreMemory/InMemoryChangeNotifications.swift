// In-memory implementations of TollgateStore's repository protocols, for tests that need no PostgreSQL.
import Synchronization
import TollgateStore

/// `ChangeNotifications` within one process: `post` wakes every `watch` on that channel, as a NOTIFY would.
public final class InMemoryChangeNotifications: ChangeNotifications {
    private struct Watcher {
        let channel: NotificationChannel
        let continuation: AsyncStream<Void>.Continuation
    }
    private let watchers = Mutex<[Int: Watcher]>([:])
    private let nextID = Atomic<Int>(0)

    public init() {}

    /// Delivers one notification on `channel` to every current watcher.
    public func post(_ channel: NotificationChannel) {
        for watcher in watchers.withLock({ Array($0.values) }) where watcher.channel == channel {
            watcher.continuation.yield()
        }
    }

    /// How many watchers are listening on `channel` now (tests wait for a watcher before posting).
    public func watcherCount(_ channel: NotificationChannel) -> Int {
        watchers.withLock { $0.values.filter { $0.channel == channel }.count }
    }

    public func watch(_ channel: NotificationChannel, onChange: @escaping @Sendable () async -> Void) async {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .unbounded)
        watchers.withLock { $0[id] = Watcher(channel: channel, continuation: continuation) }
        defer { watchers.withLock { _ = $0.removeValue(forKey: id) } }
        await withTaskCancellationHandler {
            await onChange()
            for await _ in stream { await onChange() }
        } onCancel: {
            continuation.finish()
        }
    }
}
