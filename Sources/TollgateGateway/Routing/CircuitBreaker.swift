import Foundation
import TollgateCore

/// One backend's circuit breaker, as a value: `closed` while it works; `failures` failures (5xx, connection failures,
/// timeouts) within `window_seconds` open it for `open_seconds`, during which the pools it serves skip it; then the
/// first request to try it is the probe (`halfOpen`), and the probe's outcome closes it or opens it again. A probe
/// that reports nothing for `open_seconds` (its request refused before it was sent, say) lets the next request probe.
struct CircuitBreaker: Sendable {
    enum State: String, Sendable {
        case closed, open
        case halfOpen = "half_open"
    }

    struct Transition: Sendable, Equatable {
        var from: State
        var to: State
        var reason: String
    }

    private(set) var state = State.closed
    /// Why it is in this state (the last failure, or the probe's outcome); nil while it has never opened.
    private(set) var reason: String?
    private(set) var since: Date
    /// While open: when the first probe may go.
    private(set) var openUntil: Date?
    private var failures: [Date] = []
    private var probeSentAt: Date?

    init(at instant: Date) { since = instant }

    /// Whether a request could be sent to the backend now (without taking the probe).
    func isAvailable(at instant: Date, spec: CircuitBreakerSpec) -> Bool {
        switch state {
        case .closed: true
        case .open: instant >= (openUntil ?? instant)
        case .halfOpen: probeSentAt.map { instant.timeIntervalSince($0) >= Double(spec.openSeconds) } ?? true
        }
    }

    /// A request is about to be sent: false when it must not be (open, or another request is the probe). Past the
    /// open time, this request becomes the probe.
    mutating func attempt(at instant: Date, spec: CircuitBreakerSpec) -> (allowed: Bool, transition: Transition?) {
        guard isAvailable(at: instant, spec: spec) else { return (false, nil) }
        switch state {
        case .closed:
            return (true, nil)
        case .open:
            let transition = move(to: .halfOpen, reason: "probing after \(spec.openSeconds) s open", at: instant)
            probeSentAt = instant
            return (true, transition)
        case .halfOpen:
            probeSentAt = instant
            return (true, nil)
        }
    }

    /// The backend answered (anything but a 5xx or a 429).
    mutating func succeeded(at instant: Date) -> Transition? {
        guard state == .halfOpen else { return nil }
        failures = []
        probeSentAt = nil
        return move(to: .closed, reason: "probe succeeded", at: instant)
    }

    /// The backend failed (`reason`: `HTTP 503`, `timeout`, `unreachable`).
    mutating func failed(_ reason: String, at instant: Date, spec: CircuitBreakerSpec) -> Transition? {
        switch state {
        case .open:
            return nil
        case .halfOpen:
            probeSentAt = nil
            openUntil = instant.addingTimeInterval(Double(spec.openSeconds))
            return move(to: .open, reason: "probe failed: \(reason)", at: instant)
        case .closed:
            let windowStart = instant.addingTimeInterval(-Double(spec.windowSeconds))
            failures.removeAll { $0 <= windowStart }
            failures.append(instant)
            guard failures.count >= spec.failures else { return nil }
            failures = []
            openUntil = instant.addingTimeInterval(Double(spec.openSeconds))
            return move(to: .open, reason: "\(spec.failures) failures in \(spec.windowSeconds) s, the last \(reason)", at: instant)
        }
    }

    private mutating func move(to next: State, reason: String, at instant: Date) -> Transition {
        let transition = Transition(from: state, to: next, reason: reason)
        state = next
        self.reason = reason
        since = instant
        if next != .open { openUntil = nil }
        return transition
    }
}
