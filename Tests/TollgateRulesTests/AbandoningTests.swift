import Dispatch
import Testing

@testable import TollgateStore

/// The bound on a lock-session query: a result in time is returned, a wait that ignores cancellation is left behind.
@Suite struct AbandoningTests {
    struct Boom: Error {}

    @Test func returnsResultsAndErrorsThatComeInTime() async throws {
        #expect(try await abandoning(after: .seconds(5)) { 42 } == 42)
        await #expect(throws: Boom.self) { try await abandoning(after: .seconds(5)) { () async throws -> Int in throw Boom() } }
    }

    // The ignored wait lasts 20 s and the bound is 5 s: far enough apart that a loaded machine (CI runs every suite in
    // parallel on two cores) cannot push an abandoned wait over the bound, while a wait that is not abandoned fails it.
    @Test func aWaitThatIgnoresCancellationIsAbandonedAtTheDeadline() async throws {
        let started = ContinuousClock.now
        await #expect(throws: QueryAbandoned.self) {
            try await abandoning(after: .milliseconds(100)) {
                // Like a request written to a connection as it closed: answered late, whatever cancellation says.
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    DispatchQueue.global().asyncAfter(deadline: .now() + 20) { continuation.resume() }
                }
            }
        }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func cancellingTheCallerEndsTheWait() async throws {
        let task = Task {
            try await abandoning(after: .seconds(30)) {
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    DispatchQueue.global().asyncAfter(deadline: .now() + 20) { continuation.resume() }
                }
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        let started = ContinuousClock.now
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}
