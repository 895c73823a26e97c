import Logging
import PostgresNIO

/// `LeaderElection` on a PostgreSQL session advisory lock, held on a dedicated connection that also LISTENs.
///
/// The connection is never pooled: closing it is what gives the lock back, so no code path can leave a lock-holding
/// session idle in a pool. Every query on it is bounded (`abandoning(after:)`), because a request written to a
/// connection just as it closes is never answered and that wait ignores cancellation.
public struct PostgresLeaderElection: LeaderElection {
    let connection: PostgresConnection.Configuration
    let logger: Logger

    /// - Parameter connection: where to open the lock session (`DatabaseLocation.connectionConfiguration()`).
    package init(connection: PostgresConnection.Configuration, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    public func lead(
        key: Int, heartbeatInterval: Duration, listeningTo channel: NotificationChannel, onChange: @escaping @Sendable () -> Void,
        _ body: @escaping @Sendable () async throws -> Void
    ) async throws -> Bool {
        let connection = try await PostgresConnection.connect(configuration: self.connection, id: 0, logger: logger)
        do {
            let led = try await lead(on: connection, key: key, heartbeatInterval: heartbeatInterval, channel: channel, onChange: onChange, body)
            try? await connection.close()
            return led
        } catch {
            try? await connection.close()
            throw error
        }
    }

    private func lead(
        on connection: PostgresConnection, key: Int, heartbeatInterval interval: Duration, channel: NotificationChannel,
        onChange: @escaping @Sendable () -> Void, _ body: @escaping @Sendable () async throws -> Void
    ) async throws -> Bool {
        let logger = self.logger
        let acquired = try await abandoning(after: .seconds(10)) {
            try await connection.query("SELECT pg_try_advisory_lock(\(key))", logger: logger).collect().first?.decode(Bool.self) ?? false
        }
        guard acquired else { return false }
        try await connection.listen(on: channel.name) { notifications in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await body() }
                group.addTask {
                    for try await _ in notifications { onChange() }
                    throw LeaderSessionLost()
                }
                group.addTask {
                    // A half-open TCP connection delivers no error by itself; a failing (or unanswered) query does.
                    while true {
                        try await Task.sleep(for: interval)
                        guard !connection.isClosed else { throw LeaderSessionLost() }
                        try await abandoning(after: max(interval * 4, .seconds(2))) {
                            _ = try await connection.query("SELECT 1", logger: logger)
                        }
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        }
        // The body ended: give the lease back now, so the next candidate can lead at once. (Closing the session would
        // too, but the server releases a closed session's locks only once its backend has exited, a moment later.)
        _ = try? await abandoning(after: .seconds(2)) {
            try await connection.query("SELECT pg_advisory_unlock(\(key))", logger: logger)
        }
        return true
    }
}

extension PostgresDatabase {
    /// Leader election on a session advisory lock of this database.
    public var leaderElection: PostgresLeaderElection {
        PostgresLeaderElection(connection: location.connectionConfiguration(), logger: logger)
    }
}
