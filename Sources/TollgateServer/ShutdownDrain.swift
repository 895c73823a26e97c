import Logging
import ServiceLifecycle
import Synchronization

/// Whether the process has been asked to stop. `/readyz` answers 503 `draining` from the first instant of a SIGTERM, so
/// a balancer that probes readiness stops sending before the listener closes.
public final class DrainState: Sendable {
    private let draining = Mutex(false)

    public init() {}

    public var isDraining: Bool { draining.withLock { $0 } }

    func begin() { draining.withLock { $0 = true } }
}

/// The first service to see a graceful shutdown (it runs after the application in the outer service group, so it stops
/// first): it marks the process as draining and keeps the listener open for `delay`, the time a balancer needs to take
/// the instance out of rotation (Kubernetes removes a pod's endpoint asynchronously). Then the application's own
/// shutdown runs: the server stops accepting and finishes in-flight requests, the writer loads the spool, the budget
/// evaluator closes its lock session (which releases leadership), and the process exits 0.
struct ShutdownDrainGate: Service {
    let state: DrainState
    let delay: Duration
    let logger: Logger

    func run() async throws {
        // Returns when the group shuts down; cancellation (the hard deadline) ends the wait as well.
        try? await gracefulShutdown()
        state.begin()
        logger.info("Shutdown requested: readiness answers 503, draining", metadata: ["drain.delay": "\(delay)"])
        if delay > .zero { try? await Task.sleep(for: delay) }
    }
}
