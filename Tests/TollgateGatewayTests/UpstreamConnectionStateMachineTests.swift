import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import TollgateGateway

/// An upstream connection's state, event by event, without a channel: the promise and the consumer are plain names.
@Suite struct UpstreamConnectionStateMachineTests {
    typealias Machine = UpstreamConnectionStateMachine<String, String>

    static func head(_ headers: HTTPHeaders = ["content-type": "application/json"], version: HTTPVersion = .http1_1) -> HTTPResponseHead {
        HTTPResponseHead(version: version, status: .ok, headers: headers)
    }
    static let eventStream = head(["content-type": "text/event-stream"])

    struct Reset: Error, CustomStringConvertible {
        var description: String { "reset by peer" }
    }

    /// A machine whose request "p" is sent, waiting for the head.
    static func sent(_ reply: UpstreamReplyMode<String>) -> Machine {
        var machine = Machine()
        #expect(machine.start("p", reply: reply, channelActive: true) == .sendRequest)
        return machine
    }

    /// A machine streaming an event stream to consumer "c".
    static func streaming(_ head: HTTPResponseHead = eventStream) -> Machine {
        var machine = sent(.stream("c", otherwiseCollectUpTo: 1_000))
        #expect(machine.headReceived(head) == .forwardHead("p", head, exchange: machine.exchange))
        return machine
    }

    @Test func aCollectedReplyWithinTheLimitIsHandedOverWholeAndTheConnectionGoesBackToThePool() {
        var machine = Self.sent(.collect(limit: 11))
        #expect(machine.exchange == 1)
        #expect(machine.headReceived(Self.head()) == .none)
        #expect(machine.bodyReceived(ByteBuffer(string: "hello")) == .none)
        #expect(machine.bodyReceived(ByteBuffer(string: " world")) == .none)  // exactly at the limit
        #expect(machine.endReceived() == .succeedCollected("p", Self.head(), ByteBuffer(string: "hello world"), then: .backToPool))
        // Idle again: the next request goes out on the same connection, as the next exchange.
        #expect(machine.start("q", reply: .collect(limit: 11), channelActive: true) == .sendRequest)
        #expect(machine.exchange == 2)
    }

    @Test func aCollectedReplyOverTheLimitFailsAndClosesAndTheRestOfItIsIgnored() {
        var machine = Self.sent(.collect(limit: 8))
        _ = machine.headReceived(Self.head())
        #expect(machine.bodyReceived(ByteBuffer(string: "hello")) == .none)
        #expect(machine.bodyReceived(ByteBuffer(string: " world")) == .failPromise("p", .replyTooLarge(8), close: true))
        #expect(machine.bodyReceived(ByteBuffer(string: "!")) == .none)
        #expect(machine.endReceived() == .none)  // never back to the pool
        #expect(machine.start("q", reply: .collect(limit: 8), channelActive: true) == .fail("q", .closedBeforeReply))
    }

    @Test func anEventStreamIsForwardedPartByPartPastTheCollectLimit() {
        var machine = Self.sent(.stream("c", otherwiseCollectUpTo: 4))
        #expect(machine.headReceived(Self.eventStream) == .forwardHead("p", Self.eventStream, exchange: 1))
        #expect(machine.bodyReceived(ByteBuffer(string: "data: a\n\n")) == .deliverBody("c", ByteBuffer(string: "data: a\n\n")))
        #expect(machine.bodyReceived(ByteBuffer(string: "data: b\n\n")) == .deliverBody("c", ByteBuffer(string: "data: b\n\n")))
        #expect(machine.endReceived() == .endStream("c", resumeReading: false, then: .backToPool))
        #expect(machine.endReceived() == .none)
    }

    @Test func aStreamedRequestsReplyThatIsNotAnEventStreamIsCollectedWithinTheSameLimit() {
        var within = Self.sent(.stream("c", otherwiseCollectUpTo: 5))
        #expect(within.headReceived(Self.head()) == .none)
        #expect(within.bodyReceived(ByteBuffer(string: "hello")) == .none)
        #expect(within.endReceived() == .succeedCollected("p", Self.head(), ByteBuffer(string: "hello"), then: .backToPool))

        var over = Self.sent(.stream("c", otherwiseCollectUpTo: 4))
        #expect(over.headReceived(Self.head(["content-type": "text/plain"])) == .none)
        #expect(over.bodyReceived(ByteBuffer(string: "hello")) == .failPromise("p", .replyTooLarge(4), close: true))
    }

    @Test func readingPausesAndResumesOnlyForTheCurrentStreamAndOnlyOnce() {
        var machine = Self.streaming()
        #expect(machine.pauseReading(exchange: 0) == .none)  // an earlier exchange's signal
        #expect(machine.pauseReading(exchange: 1) == .pauseReading)
        #expect(machine.pauseReading(exchange: 1) == .none)  // already paused
        #expect(machine.readTimedOut() == .none)  // the wait is the consumer's, not the upstream's
        #expect(machine.resumeReading(exchange: 2) == .none)
        #expect(machine.resumeReading(exchange: 1) == .resumeReading)
        #expect(machine.resumeReading(exchange: 1) == .none)
        // Paused when the stream ends: reading resumes with it, and the next exchange starts unpaused.
        #expect(machine.pauseReading(exchange: 1) == .pauseReading)
        #expect(machine.endReceived() == .endStream("c", resumeReading: true, then: .backToPool))
        #expect(!machine.paused)
        #expect(machine.start("q", reply: .collect(limit: 10), channelActive: true) == .sendRequest)
        #expect(machine.pauseReading(exchange: 2) == .none)  // a collected reply is not paused
    }

    @Test func aConsumerThatGoesAwayMidStreamClosesTheConnection() {
        var machine = Self.streaming()
        #expect(machine.consumerGone(exchange: 0) == .none)
        #expect(machine.bodyReceived(ByteBuffer(string: "x")) == .deliverBody("c", ByteBuffer(string: "x")))
        #expect(machine.consumerGone(exchange: 1) == .close)
        #expect(machine.bodyReceived(ByteBuffer(string: "y")) == .none)
        #expect(machine.endReceived() == .none)
        #expect(machine.consumerGone(exchange: 1) == .none)
        #expect(machine.start("q", reply: .collect(limit: 10), channelActive: true) == .fail("q", .closedBeforeReply))
    }

    @Test func aReplyThatEndsWithConnectionCloseClosesTheConnection() {
        let closing = Self.head(["content-type": "application/json", "connection": "close"])
        var collected = Self.sent(.collect(limit: 10))
        _ = collected.headReceived(closing)
        #expect(collected.endReceived() == .succeedCollected("p", closing, ByteBuffer(), then: .close))

        var http10 = Self.sent(.collect(limit: 10))
        _ = http10.headReceived(Self.head(version: .http1_0))
        #expect(http10.endReceived() == .succeedCollected("p", Self.head(version: .http1_0), ByteBuffer(), then: .close))

        var streamed = Self.streaming(Self.head(["content-type": "text/event-stream", "connection": "close"]))
        #expect(streamed.endReceived() == .endStream("c", resumeReading: false, then: .close))
    }

    @Test func aRequestIsRefusedOnABusyOrClosedConnectionWithoutChangingIt() {
        var machine = Machine()
        #expect(machine.start("p", reply: .collect(limit: 10), channelActive: false) == .fail("p", .closedBeforeReply))
        #expect(machine.exchange == 0)
        #expect(machine.start("q", reply: .collect(limit: 10), channelActive: true) == .sendRequest)
        #expect(machine.start("r", reply: .collect(limit: 10), channelActive: true) == .fail("r", .closedBeforeReply))
        #expect(machine.headReceived(Self.head()) == .none)  // still "q"'s exchange
        #expect(machine.endReceived() == .succeedCollected("q", Self.head(), ByteBuffer(), then: .backToPool))
    }

    @Test func anErrorFailsTheExchangeInEachStateAndAlwaysCloses() {
        var idle = Machine()
        #expect(idle.errorCaught(Reset()) == .close)

        // Before any byte of a reply: the request may be sent again elsewhere.
        var awaiting = Self.sent(.collect(limit: 10))
        #expect(awaiting.errorCaught(Reset()) == .failPromise("p", .closedBeforeReply, close: true))
        #expect(awaiting.errorCaught(Reset()) == .close)  // closed: nobody left to fail

        var collecting = Self.sent(.collect(limit: 10))
        _ = collecting.headReceived(Self.head())
        #expect(collecting.errorCaught(Reset()) == .failPromise("p", .connectionLost("reset by peer"), close: true))

        var streaming = Self.streaming()
        #expect(streaming.errorCaught(Reset()) == .failConsumer("c", .connectionLost("reset by peer"), close: true))
        #expect(streaming.endReceived() == .none)
    }

    @Test func aClosedConnectionFailsTheExchangeInEachStateAndTakesNoMoreRequests() {
        var idle = Machine()
        #expect(idle.channelInactive() == .none)
        #expect(idle.start("q", reply: .collect(limit: 10), channelActive: true) == .fail("q", .closedBeforeReply))

        var awaiting = Self.sent(.collect(limit: 10))
        #expect(awaiting.channelInactive() == .failPromise("p", .closedBeforeReply, close: false))
        #expect(awaiting.channelInactive() == .none)

        var collecting = Self.sent(.stream("c", otherwiseCollectUpTo: 10))
        _ = collecting.headReceived(Self.head())
        #expect(collecting.channelInactive() == .failPromise("p", .connectionLost("connection closed"), close: false))

        var streaming = Self.streaming()
        #expect(streaming.channelInactive() == .failConsumer("c", .connectionLost("connection closed"), close: false))
        #expect(streaming.bodyReceived(ByteBuffer(string: "late")) == .none)
    }

    @Test func aReadTimeoutFailsAWaitingExchangeAndLetsAnIdleConnectionGo() {
        var idle = Machine()
        #expect(idle.readTimedOut() == .close)

        var awaiting = Self.sent(.collect(limit: 10))
        #expect(awaiting.readTimedOut() == .failPromise("p", .readTimeout, close: true))
        #expect(awaiting.readTimedOut() == .close)

        var collecting = Self.sent(.collect(limit: 100))
        _ = collecting.headReceived(Self.head())
        #expect(collecting.bodyReceived(ByteBuffer(string: "{\"partial\":")) == .none)
        #expect(collecting.readTimedOut() == .failPromise("p", .readTimeout, close: true))

        var streaming = Self.streaming()
        #expect(streaming.readTimedOut() == .failConsumer("c", .readTimeout, close: true))

        // Back in the pool after a reply, a whole read timeout without a request lets it go.
        var pooled = Self.sent(.collect(limit: 10))
        _ = pooled.headReceived(Self.head())
        _ = pooled.endReceived()
        #expect(pooled.readTimedOut() == .close)
    }
}

/// `UpstreamConnectionHandler` on an `EmbeddedChannel`: reply parts written inbound, what the promise, the consumer
/// and the pool got, and whether the channel closed.
@Suite struct UpstreamConnectionHandlerTests {
    /// Records a streamed body; confined to the embedded channel's (the test's) thread.
    final class Recorder: UpstreamBodyConsumer, @unchecked Sendable {
        var parts: [String] = []
        var ended: [UpstreamClientError?] = []
        func upstreamBody(_ buffer: ByteBuffer) { parts.append(String(buffer: buffer)) }
        func upstreamEnded(_ error: UpstreamClientError?) { ended.append(error) }
    }

    /// A connected channel with the handler, and how often it was offered back to the pool.
    struct Harness {
        let channel: EmbeddedChannel
        let connection: UpstreamConnection
        let released = NIOLockedValueBox(0)

        init() throws {
            let handler = UpstreamConnectionHandler()
            channel = EmbeddedChannel(handler: handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8000)).wait()
            let key = UpstreamClients.PoolKey(endpoint: UpstreamEndpoint(tls: false, host: "127.0.0.1", port: 8000), readTimeoutSeconds: 5)
            connection = UpstreamConnection(key: key, channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            let released = self.released
            handler.release = { released.withLockedValue { $0 += 1 } }
        }

        /// Sends a request and checks it went out whole: head, body, end.
        func send(_ reply: UpstreamClients.ReplyMode) throws -> EventLoopFuture<UpstreamResponse> {
            let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions", headers: ["host": "127.0.0.1:8000"])
            let exchange = UpstreamClients.Exchange(
                key: connection.key, head: head, body: ByteBuffer(string: "{}"), reply: reply, connectTimeoutSeconds: 2)
            let future = connection.send(exchange)
            #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) == .head(head))
            #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) == .body(.byteBuffer(ByteBuffer(string: "{}"))))
            #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) == .end(nil))
            return future
        }

        func reply(_ parts: HTTPClientResponsePart...) throws {
            for part in parts { try channel.writeInbound(part) }
        }
    }

    /// The future's result, which on the embedded loop is there as soon as the handler completed it.
    static func result(_ future: EventLoopFuture<UpstreamResponse>) -> Result<UpstreamResponse, any Error>? {
        let box = NIOLockedValueBox<Result<UpstreamResponse, any Error>?>(nil)
        future.whenComplete { result in box.withLockedValue { $0 = result } }
        return box.withLockedValue { $0 }
    }

    static func head(_ headers: HTTPHeaders) -> HTTPResponseHead { HTTPResponseHead(version: .http1_1, status: .ok, headers: headers) }

    @Test func aCollectedReplyCompletesThePromiseWholeAndTheConnectionGoesBackToThePool() throws {
        let harness = try Harness()
        let future = try harness.send(.collect(limit: 100))
        try harness.reply(.head(Self.head(["content-type": "application/json"])), .body(ByteBuffer(string: #"{"a":"#)))
        #expect(Self.result(future) == nil)  // nothing handed over before the end
        try harness.reply(.body(ByteBuffer(string: "1}")), .end(nil))
        let response = try #require(Self.result(future)).get()
        #expect(response.status == .ok && response.body == ByteBuffer(string: #"{"a":1}"#) && response.stream == nil)
        #expect(harness.released.withLockedValue { $0 } == 1)
        #expect(harness.channel.isActive)
        // The next request goes out on the same connection.
        _ = try harness.send(.collect(limit: 100))
        _ = try harness.channel.finish(acceptAlreadyClosed: true)
    }

    @Test func anEventStreamGoesToTheConsumerAndConnectionCloseClosesTheChannelAfterIt() throws {
        let harness = try Harness()
        let recorder = Recorder()
        let future = try harness.send(.stream(recorder, otherwiseCollectUpTo: 4))
        try harness.reply(.head(Self.head(["content-type": "text/event-stream", "connection": "close"])))
        let response = try #require(Self.result(future)).get()
        #expect(response.status == .ok && response.body == nil && response.stream != nil)
        try harness.reply(.body(ByteBuffer(string: "data: a\n\n")), .body(ByteBuffer(string: "data: b\n\n")), .end(nil))
        #expect(recorder.parts == ["data: a\n\n", "data: b\n\n"])
        #expect(recorder.ended == [nil])
        #expect(harness.released.withLockedValue { $0 } == 0)
        #expect(!harness.channel.isActive)
    }

    @Test func aReadTimeoutWhileTheConsumerHasPausedReadingWaitsAndFailsTheStreamOnceResumed() throws {
        let harness = try Harness()
        let recorder = Recorder()
        let future = try harness.send(.stream(recorder, otherwiseCollectUpTo: 4))
        try harness.reply(.head(Self.head(["content-type": "text/event-stream"])), .body(ByteBuffer(string: "data: a\n\n")))
        let response = try #require(Self.result(future)).get()
        let stream = try #require(response.stream)
        stream.pause()
        harness.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(recorder.ended.isEmpty && harness.channel.isActive)
        stream.resume()
        harness.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(recorder.ended == [.readTimeout])
        #expect(!harness.channel.isActive)
        #expect(harness.released.withLockedValue { $0 } == 0)
    }

    @Test func aConnectionClosedBeforeTheReplyFailsTheRequestSoItCanBeSentElsewhere() throws {
        let harness = try Harness()
        let future = try harness.send(.collect(limit: 100))
        try harness.channel.close().wait()
        #expect(throws: UpstreamClientError.closedBeforeReply) { try #require(Self.result(future)).get() }
        // A closed connection takes no more requests.
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")
        let refused = harness.connection.send(
            UpstreamClients.Exchange(key: harness.connection.key, head: head, body: ByteBuffer(), reply: .collect(limit: 1), connectTimeoutSeconds: 2))
        #expect(throws: UpstreamClientError.closedBeforeReply) { try #require(Self.result(refused)).get() }
    }
}
