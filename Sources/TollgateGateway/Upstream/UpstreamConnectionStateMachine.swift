import NIOCore
import NIOHTTP1

/// How a reply's body is handed over (`UpstreamClients.ReplyMode` names it with the body's consumer).
enum UpstreamReplyMode<Consumer> {
    /// The whole body, in one buffer, once it has all arrived (refused past `limit` bytes): a request that did not
    /// ask for a stream has no per-chunk hand-over to wait for.
    case collect(limit: Int)
    /// An event stream (`text/event-stream`) piece by piece as it is read, to `consumer`, on the connection's event
    /// loop, the future completing with the head. Any other reply (an error, or an upstream that ignored the
    /// request's `stream`) is collected whole, as with `collect(limit:)`, and `consumer` hears nothing.
    case stream(Consumer, otherwiseCollectUpTo: Int)
}

extension UpstreamReplyMode: Sendable where Consumer: Sendable {}

/// Where one upstream HTTP/1.1 connection stands, as a value: `UpstreamConnectionHandler` feeds it what happened (a
/// request to send, a reply's head, body part or end, the consumer pausing, resuming or leaving, a read timeout, an
/// error, the connection closing) and performs the action it returns (send, complete the reply's promise, hand a body
/// part to the consumer, pause or resume reading, give the connection back to the pool, close). It does no I/O: the
/// promise and the consumer are opaque values it only carries (`Promise`, `Consumer`), so each transition is tested
/// event by event on its own (postgres-nio and async-http-client keep their connection state the same way).
///
/// One exchange runs at a time. Exchanges are numbered, so a late signal about an earlier reply's body is ignored.
struct UpstreamConnectionStateMachine<Promise, Consumer> {
    private enum State {
        /// No exchange: the connection may be pooled.
        case idle
        /// The request was sent; no byte of a reply has come back (a failure now may be retried elsewhere).
        case awaitingHead(Promise, UpstreamReplyMode<Consumer>)
        /// An event stream's body is passing to its consumer; the connection is kept after it when `keepAlive`.
        case streaming(Consumer, keepAlive: Bool)
        /// Collecting the whole reply, up to `limit` bytes, before handing it over.
        case collecting(Promise, HTTPResponseHead, ByteBuffer, limit: Int)
        /// The connection is going away (failed, abandoned mid-reply, or closed); nothing more is handed over and it
        /// never goes back to the pool.
        case closed
        /// Only within a transition, while the collected body grows in place (uniquely referenced); never seen
        /// between events.
        case modifying
    }
    private var state = State.idle
    /// The number of the current (or last) exchange.
    private(set) var exchange: UInt64 = 0
    /// Reading is paused because the body's consumer lags (autoRead off); a read timeout does not apply then.
    private(set) var paused = false

    /// What to do with a request handed to the connection.
    enum StartAction {
        /// Write the request (head, body and end, in one flush).
        case sendRequest
        /// The connection is busy or gone: fail the request's promise (it may be sent on another connection).
        case fail(Promise, UpstreamClientError)
    }

    /// What becomes of the connection once a reply has ended.
    enum AfterReply: Equatable {
        /// Keep-alive: offer it back to the pool.
        case backToPool
        /// The upstream said `Connection: close` (or spoke HTTP/1.0): close it.
        case close
    }

    /// What to do after any other event.
    enum Action {
        case none
        /// An event stream's head arrived: complete the promise with it and a handle (numbered `exchange`) that pauses,
        /// resumes or abandons the body.
        case forwardHead(Promise, HTTPResponseHead, exchange: UInt64)
        /// Hand a part of the event stream's body to its consumer.
        case deliverBody(Consumer, ByteBuffer)
        /// The collected reply is complete: first do as `then` says with the connection (so the promise's callbacks
        /// find it back in the pool), then complete the promise with the head and the whole body.
        case succeedCollected(Promise, HTTPResponseHead, ByteBuffer, then: AfterReply)
        /// The event stream ended: resume reading first if it was paused, do as `then` says with the connection, then
        /// tell the consumer the body is complete.
        case endStream(Consumer, resumeReading: Bool, then: AfterReply)
        /// Fail the promise with `error`; then close the connection if `close`.
        case failPromise(Promise, UpstreamClientError, close: Bool)
        /// End the consumer's body with `error`; then close the connection if `close`.
        case failConsumer(Consumer, UpstreamClientError, close: Bool)
        /// Stop reading (autoRead off) until the consumer catches up.
        case pauseReading
        /// Read again (autoRead on).
        case resumeReading
        /// Close the connection.
        case close
    }

    // MARK: - The request

    /// A request is to be sent on this connection, which is open if `channelActive`.
    mutating func start(_ promise: Promise, reply: UpstreamReplyMode<Consumer>, channelActive: Bool) -> StartAction {
        guard case .idle = state, channelActive else { return .fail(promise, .closedBeforeReply) }
        exchange &+= 1
        paused = false
        state = .awaitingHead(promise, reply)
        return .sendRequest
    }

    // MARK: - The reply

    mutating func headReceived(_ head: HTTPResponseHead) -> Action {
        guard case .awaitingHead(let promise, let reply) = state else { return .none }
        switch reply {
        case .collect(let limit):
            state = .collecting(promise, head, ByteBuffer(), limit: limit)
            return .none
        case .stream(_, let limit) where !head.isEventStream:
            state = .collecting(promise, head, ByteBuffer(), limit: limit)
            return .none
        case .stream(let consumer, _):
            state = .streaming(consumer, keepAlive: head.isKeepAlive)
            return .forwardHead(promise, head, exchange: exchange)
        }
    }

    mutating func bodyReceived(_ buffer: ByteBuffer) -> Action {
        switch state {
        case .streaming(let consumer, _):
            return .deliverBody(consumer, buffer)
        case .collecting(let promise, let head, var collected, let limit):
            guard collected.readableBytes + buffer.readableBytes <= limit else {
                state = .closed
                return .failPromise(promise, .replyTooLarge(limit), close: true)
            }
            state = .modifying  // let `collected` be uniquely referenced while it grows
            if collected.readableBytes == 0 {
                collected = buffer
            } else {
                var buffer = buffer
                collected.writeBuffer(&buffer)
            }
            state = .collecting(promise, head, collected, limit: limit)
            return .none
        case .idle, .awaitingHead, .closed:
            return .none
        case .modifying:
            preconditionFailure("UpstreamConnectionStateMachine seen mid-transition")
        }
    }

    mutating func endReceived() -> Action {
        switch state {
        case .streaming(let consumer, let keepAlive):
            state = .idle
            let resume = paused
            paused = false
            return .endStream(consumer, resumeReading: resume, then: keepAlive ? .backToPool : .close)
        case .collecting(let promise, let head, let collected, _):
            state = .idle
            return .succeedCollected(promise, head, collected, then: head.isKeepAlive ? .backToPool : .close)
        case .idle, .awaitingHead, .closed:
            return .none  // closed: the connection is going away, never back to the pool
        case .modifying:
            preconditionFailure("UpstreamConnectionStateMachine seen mid-transition")
        }
    }

    // MARK: - The consumer of a streamed body

    /// The consumer of exchange `exchange` lags.
    mutating func pauseReading(exchange: UInt64) -> Action {
        guard exchange == self.exchange, !paused, case .streaming = state else { return .none }
        paused = true
        return .pauseReading
    }

    /// The consumer of exchange `exchange` caught up.
    mutating func resumeReading(exchange: UInt64) -> Action {
        guard exchange == self.exchange, paused else { return .none }
        paused = false
        return .resumeReading
    }

    /// The consumer of exchange `exchange` stopped before the body's end (the client went away): the rest can't be
    /// skipped safely, so the connection closes.
    mutating func consumerGone(exchange: UInt64) -> Action {
        guard exchange == self.exchange, case .streaming = state else { return .none }
        state = .closed
        return .close
    }

    // MARK: - The connection

    /// No byte arrived for a whole read timeout. Mid-exchange that fails it (unless reading is paused, when the wait
    /// is the consumer's); idle in the pool, the connection is let go.
    mutating func readTimedOut() -> Action {
        switch state {
        case .awaitingHead, .streaming, .collecting:
            guard !paused else { return .none }
            return fail(.readTimeout, close: true)
        case .idle, .closed:
            return .close
        case .modifying:
            preconditionFailure("UpstreamConnectionStateMachine seen mid-transition")
        }
    }

    /// The channel reported `error`: fail the exchange (see `lost`) and close.
    mutating func errorCaught(_ error: any Error) -> Action {
        lost(error, close: true)
    }

    /// The connection closed: fail the exchange (see `lost`); nothing more happens on it.
    mutating func channelInactive() -> Action {
        let action = lost(nil, close: false)
        state = .closed
        return action
    }

    /// The connection failed (`error`) or closed (nil). Before any byte of a reply came back — typically a connection
    /// the upstream had closed while idle, reset as the request arrived — the request may be sent again on another
    /// connection (`closedBeforeReply`); later it is `connectionLost`.
    private mutating func lost(_ error: (any Error)?, close: Bool) -> Action {
        switch state {
        case .awaitingHead:
            return fail(.closedBeforeReply, close: close)
        case .streaming, .collecting:
            return fail(.connectionLost(error.map { String(describing: $0) } ?? "connection closed"), close: close)
        case .idle, .closed:
            return close ? .close : .none
        case .modifying:
            preconditionFailure("UpstreamConnectionStateMachine seen mid-transition")
        }
    }

    /// Fails whoever waits on the exchange in progress, and marks the connection closed.
    private mutating func fail(_ error: UpstreamClientError, close: Bool) -> Action {
        switch state {
        case .awaitingHead(let promise, _), .collecting(let promise, _, _, _):
            state = .closed
            return .failPromise(promise, error, close: close)
        case .streaming(let consumer, _):
            state = .closed
            return .failConsumer(consumer, error, close: close)
        case .idle, .closed:
            return close ? .close : .none
        case .modifying:
            preconditionFailure("UpstreamConnectionStateMachine seen mid-transition")
        }
    }
}

extension UpstreamConnectionStateMachine.StartAction: Equatable where Promise: Equatable {}
extension UpstreamConnectionStateMachine.Action: Equatable where Promise: Equatable, Consumer: Equatable {}

extension HTTPResponseHead {
    var isEventStream: Bool { headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") ?? false }
}
