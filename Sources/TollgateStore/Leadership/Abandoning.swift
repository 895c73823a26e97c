import Synchronization

/// The lock session's query took longer than it may.
struct QueryAbandoned: Error {}

/// Waits for `operation` for at most `timeout`, then throws `QueryAbandoned` and leaves it behind.
///
/// For the leader lock session, which can die under a query (a network cut, `pg_terminate_backend`): a request
/// that postgres-nio writes to a connection just as it closes is never answered, and that wait ignores cancellation, so
/// a heartbeat awaited in place would hold the evaluator forever, still believing it leads. An abandoned wait ends
/// with the process; it holds a few hundred bytes.
func abandoning<T: Sendable>(after timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = Outcome<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            outcome.install(continuation)
            let work = Task {
                do {
                    outcome.finish(.success(try await operation()))
                } catch {
                    outcome.finish(.failure(error))
                }
            }
            let timer = Task {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled, outcome.finish(.failure(QueryAbandoned())) { work.cancel() }
            }
            outcome.onFinish { timer.cancel() }
        }
    } onCancel: {
        outcome.finish(.failure(CancellationError()))
    }
}

/// Resumes the waiting continuation once, with whichever result comes first.
private final class Outcome<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var finished = false
        var whenFinished: [@Sendable () -> Void] = []
    }
    private let state = Mutex(State())

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    /// - Returns: whether this result was the one delivered.
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let (continuation, actions, won) = state.withLock { state -> (CheckedContinuation<T, any Error>?, [@Sendable () -> Void], Bool) in
            guard !state.finished else { return (nil, [], false) }
            state.finished = true
            let actions = state.whenFinished
            state.whenFinished = []
            guard let continuation = state.continuation else {
                state.early = result  // cancelled before the continuation was installed
                return (nil, actions, true)
            }
            state.continuation = nil
            return (continuation, actions, true)
        }
        continuation?.resume(with: result)
        actions.forEach { $0() }
        return won
    }

    func onFinish(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            guard !state.finished else { return true }
            state.whenFinished.append(action)
            return false
        }
        if runNow { action() }
    }
}
