/// One leader among all Tollgate instances for a job that must run once (the budget evaluator).
///
/// The lease lives on a session of its own: when that session dies (the process, the network, the server) the lease is
/// free again at once and another instance takes it at its next attempt.
public protocol LeaderElection: Sendable {
    /// One attempt at leading under `key`.
    ///
    /// When another instance holds the lease, returns false at once without running `body`. Otherwise, while holding
    /// it, calls `onChange` for each notification on `channel` and runs `body` until `body` returns (then returns true and
    /// gives the lease back) or the lease is lost: the session failed, or did not answer a heartbeat within a bound (then
    /// cancels `body`, gives the lease back and throws).
    /// - Parameter heartbeatInterval: how often the session is checked; a half-open connection gives no error by itself.
    func lead(
        key: Int, heartbeatInterval: Duration, listeningTo channel: NotificationChannel, onChange: @escaping @Sendable () -> Void,
        _ body: @escaping @Sendable () async throws -> Void
    ) async throws -> Bool
}

/// The leader's session ended under it (closed, or its notifications stopped).
public struct LeaderSessionLost: Error, Hashable, Sendable {
    public init() {}
}
