/// Where one proxied request's reply stands, as a value: `ProxyExchange` feeds it what happened (the reply came whole,
/// a stream started, bytes arrived, the stream ended, the client's connection drained or went away) and performs what
/// it returns (write, pause or resume the upstream, meter, close). It does no I/O itself, so each transition is tested
/// event by event on its own (postgres-nio and async-http-client keep their connection state the same way).
struct ProxyExchangeStateMachine {
    private enum State {
        /// The pipeline is deciding, or the reply is awaited.
        case awaitingReply
        /// An event stream is passing through, metered as it goes. `pausable`: the upstream can be paused (a mock's
        /// stream cannot); `paused`: it is, until the client's connection drains.
        case streaming(status: Int, meter: SSEStreamMeter, pausable: Bool, paused: Bool)
        /// The reply has been written or given up; later events change nothing.
        case done
        /// Only within a transition, while the stream's meter changes in place (uniquely referenced); never seen
        /// between events.
        case modifying
    }
    private var state = State.awaitingReply
    /// False once the client's connection has gone.
    private(set) var clientPresent = true

    /// What to do with a whole reply.
    enum AnswerAction: Equatable {
        /// Write it; then end the connection if `close`.
        case write(close: Bool)
        /// The client is gone: write nothing and close.
        case closeUnwritten
    }

    /// What to do when a stream's head has arrived.
    enum StreamStartAction: Equatable {
        /// Write the head to the client (flushed), then pass the events on as they come.
        case writeHead
        /// The client is gone: abandon the upstream stream and end it at once (`streamEnded(error: nil)`).
        case abandon
    }

    /// How a stream ends, once it has been metered.
    enum StreamEnd: Equatable {
        /// The client is gone: nothing more to write; close.
        case closeUnwritten
        /// The upstream broke off: close, so the cut-off stream never looks complete to the client.
        case cutShort(UpstreamClientError)
        /// Write `rest` (what the meter still held) and the end of the reply; keep the connection.
        case complete(rest: [UInt8])
    }

    /// A stream that has ended: meter it (`status`, `meter`), then do as `end` says.
    struct StreamFinish {
        let status: Int
        let meter: SSEStreamMeter
        let end: StreamEnd
    }

    /// A whole reply (or a refusal) is to be written.
    mutating func answer(close: Bool) -> AnswerAction {
        state = .done
        return clientPresent ? .write(close: close) : .closeUnwritten
    }

    /// A stream's head has arrived; its events will be metered by `meter`.
    mutating func streamStarted(status: Int, meter: SSEStreamMeter, pausable: Bool) -> StreamStartAction {
        guard case .awaitingReply = state else { return .abandon }
        state = .streaming(status: status, meter: meter, pausable: pausable, paused: false)
        return clientPresent ? .writeHead : .abandon
    }

    /// Bytes of the stream arrived: the whole events among them to write to the client, or nil for nothing to write
    /// (the events are metered either way).
    mutating func upstreamBody(_ bytes: some Collection<UInt8>) -> [UInt8]? {
        guard case .streaming(let status, var meter, let pausable, let paused) = state else { return nil }
        state = .modifying
        let out = meter.consume(bytes)
        state = .streaming(status: status, meter: meter, pausable: pausable, paused: paused)
        return clientPresent && !out.isEmpty ? out : nil
    }

    /// Bytes were written to the client, whose connection is now `clientWritable` or not. True when the upstream must
    /// be paused until the connection drains (`clientWritable()`).
    mutating func wroteToClient(clientWritable: Bool) -> Bool {
        guard !clientWritable, case .streaming(let status, let meter, true, false) = state else { return false }
        state = .streaming(status: status, meter: meter, pausable: true, paused: true)
        return true
    }

    /// The client's connection drained. True when the upstream was paused and must resume.
    mutating func clientWritable() -> Bool {
        guard case .streaming(let status, let meter, let pausable, true) = state else { return false }
        state = .streaming(status: status, meter: meter, pausable: pausable, paused: false)
        return true
    }

    /// The upstream stream ended, complete (`error` nil) or broken off. Nil when no stream was passing.
    mutating func streamEnded(error: UpstreamClientError?) -> StreamFinish? {
        guard case .streaming(let status, var meter, _, _) = state else { return nil }
        state = .modifying
        let rest = meter.finish()
        state = .done
        let end: StreamEnd
        if !clientPresent {
            end = .closeUnwritten
        } else if let error {
            end = .cutShort(error)
        } else {
            end = .complete(rest: rest)
        }
        return StreamFinish(status: status, meter: meter, end: end)
    }

    /// The client went away. A reply still awaited is metered when it comes (the upstream bills it all the same); a
    /// stream passing is ended here: abandon the upstream, then meter what passed. Nil when no stream was passing.
    mutating func clientGone() -> StreamFinish? {
        clientPresent = false
        return streamEnded(error: nil)
    }
}
