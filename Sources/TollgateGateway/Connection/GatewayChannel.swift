import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// A proxied route, recognised from a request's head: `/v1/{operation}` or
/// `/openai/deployments/{deployment}/{operation}` (Azure OpenAI's shape).
struct ProxyCall: Sendable {
    let operation: OpenAIOperation
    /// The deployment named in an Azure-style path; nil for `/v1/…`, where the body's `model` decides.
    let deployment: String?
    let head: HTTPRequest

    /// Nil for any other path. Empty path components are ignored, and the path is matched as sent (not
    /// percent-decoded), as Hummingbird's router matches.
    init?(_ head: HTTPRequest) {
        guard let target = head.path else { return nil }
        let path = target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target[..<$0] } ?? target[...]
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        let operationParts: ArraySlice<Substring>
        if parts.first == "v1" {
            deployment = nil
            operationParts = parts.dropFirst()
        } else if parts.count >= 4, parts[0] == "openai", parts[1] == "deployments" {
            deployment = String(parts[2])
            operationParts = parts.dropFirst(3)
        } else {
            return nil
        }
        let operation: OpenAIOperation
        switch operationParts.count {
        case 1 where operationParts.first == "completions": operation = .completions
        case 1 where operationParts.first == "embeddings": operation = .embeddings
        case 1 where operationParts.first == "responses" && deployment == nil: operation = .responses
        case 2 where operationParts.first == "chat" && operationParts.last == "completions": operation = .chatCompletions
        default: return nil
        }
        self.operation = operation
        self.head = head
    }

    /// A query parameter's value, percent-decoded; nil when absent.
    func queryParameter(_ name: String) -> String? {
        guard let target = head.path, let mark = target.firstIndex(of: "?") else { return nil }
        for pair in target[target.index(after: mark)...].split(separator: "&") {
            let equals = pair.firstIndex(of: "=") ?? pair.endIndex
            guard pair[..<equals] == name else { continue }
            let value = equals == pair.endIndex ? "" : pair[pair.index(after: equals)...]
            return String(value).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(value)
        }
        return nil
    }
}

/// Hummingbird's HTTP/1.1 child channel with `GatewayChannelHandler` in front of Hummingbird's request handling: the
/// proxy routes are answered on the connection's event loop, everything else goes to the router as usual.
struct GatewayHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let gateway: GatewayRoutes
    let idleTimeout: Duration?

    /// As `HTTP1Channel.setup`, with the gateway's handler after the connection-state handler, so that handler sees
    /// every request and reply (idle timeouts and graceful shutdown treat proxied requests like any other).
    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false)
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: logger))
            try channel.pipeline.syncOperations.addHandler(GatewayChannelHandler(gateway: gateway))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: asyncChannel, logger: logger)
    }
}

/// One client connection's requests, in order: the proxy routes are answered here, on the event loop, by a
/// `ProxyExchange` each; any other request is passed on to Hummingbird. Requests a client pipelines are answered in
/// the order they came, whichever side answers them: a request waits (and reading pauses) while the other side is
/// still answering an earlier one. `Expect: 100-continue` is answered, and a body announced larger than the limit is
/// refused before it is sent.
final class GatewayChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Inbound {
        case betweenRequests
        /// A request for Hummingbird: its parts are passed on.
        case passing
        /// A proxied request's body, until its end.
        case collecting(ProxyCall, ByteBuffer)
        /// The rest of a body already refused.
        case discarding
    }

    let gateway: GatewayRoutes
    private var context: ChannelHandlerContext?
    private var inbound = Inbound.betweenRequests
    /// Requests passed to Hummingbird whose replies have not ended.
    private var passedInFlight = 0
    /// The proxied request being answered.
    private var exchange: ProxyExchange?
    /// Parts that must wait for an earlier request's reply to end; reading pauses while any wait.
    private var waiting = CircularBuffer<HTTPRequestPart>()
    private var readRequested = false
    /// Parts were passed on outside a read (from `waiting`): Hummingbird's async channel hands reads over only at
    /// `channelReadComplete`, so one must follow.
    private var passedOutsideRead = false
    /// `resume` is running: an exchange that finishes within it must not start another pass over `waiting`.
    private var resuming = false

    init(gateway: GatewayRoutes) { self.gateway = gateway }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    /// The channel closed (the connection-state handler before this one does not pass `channelInactive` on).
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        waiting.removeAll()
        exchange?.clientGone()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if waiting.isEmpty && take(part, context: context) { return }
        waiting.append(part)
    }

    /// Handles a part now; false when it must wait for an earlier request's reply.
    private func take(_ part: HTTPRequestPart, context: ChannelHandlerContext) -> Bool {
        switch part {
        case .head(let head):
            guard exchange == nil else { return false }
            if let call = ProxyCall(head) {
                guard passedInFlight == 0 else { return false }
                guard head.method == .post else {
                    inbound = .discarding
                    answerAtOnce(GatewayError.methodNotAllowed(head.method, path: head.path ?? "/").reply, call: call, context: context)
                    return true
                }
                // A body announced larger than the limit is refused before it is sent (and read).
                if let length = head.headerFields[.contentLength].flatMap(Int.init), length > gateway.configuration.maximumRequestBytes {
                    inbound = .discarding
                    refuseTooLarge(call, context: context)
                    return true
                }
                inbound = .collecting(call, context.channel.allocator.buffer(capacity: 0))
                // A client that waits for leave to send its body (curl 7 does, past 1 KB) gets it at once.
                if head.headerFields[.expect]?.lowercased() == "100-continue" {
                    context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
                }
            } else {
                passedInFlight += 1
                inbound = .passing
                pass(part, context: context)
            }
        case .body(var chunk):
            switch inbound {
            case .passing:
                pass(part, context: context)
            case .collecting(let call, var body):
                guard body.readableBytes + chunk.readableBytes <= gateway.configuration.maximumRequestBytes else {
                    inbound = .discarding
                    refuseTooLarge(call, context: context)
                    return true
                }
                inbound = .betweenRequests  // let `body` be uniquely referenced while it grows
                if body.readableBytes == 0 { body = chunk } else { body.writeBuffer(&chunk) }
                inbound = .collecting(call, body)
            case .discarding, .betweenRequests:
                break
            }
        case .end:
            switch inbound {
            case .passing:
                pass(part, context: context)
            case .collecting(let call, let body):
                let exchange = ProxyExchange(call: call, body: body, gateway: gateway, connection: self, eventLoop: context.eventLoop)
                self.exchange = exchange
                inbound = .betweenRequests
                exchange.start()
                return true
            case .discarding, .betweenRequests:
                break
            }
            inbound = .betweenRequests
        }
        return true
    }

    private func pass(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if resuming { passedOutsideRead = true }
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// 413, and the connection is closed: the rest of the body is not read.
    private func refuseTooLarge(_ call: ProxyCall, context: ChannelHandlerContext) {
        var refusal = GatewayError.bodyTooLarge
        refusal.headers[.connection] = "close"
        answerAtOnce(refusal.reply, call: call, close: true, context: context)
    }

    private func answerAtOnce(_ reply: (HTTPResponse, ByteBuffer), call: ProxyCall, close: Bool = false, context: ChannelHandlerContext) {
        let exchange = ProxyExchange(call: call, body: ByteBuffer(), gateway: gateway, connection: self, eventLoop: context.eventLoop)
        self.exchange = exchange
        exchange.answer(reply, close: close)
    }

    /// Takes the parts that waited, in order, as far as they can go now.
    private func resume() {
        guard let context, !resuming else { return }
        resuming = true
        defer { resuming = false }
        while let part = waiting.first, take(part, context: context) { waiting.removeFirst() }
        if passedOutsideRead {
            passedOutsideRead = false
            context.fireChannelReadComplete()
        }
        if waiting.isEmpty && readRequested {
            readRequested = false
            context.read()
        }
    }

    // MARK: - Hummingbird's replies

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        if case .end = unwrapOutboundIn(data) {
            passedInFlight -= 1
            resume()
        }
    }

    func read(context: ChannelHandlerContext) {
        // Back-pressure while parts wait: a client that pipelines requests is not read further meanwhile.
        if waiting.isEmpty { context.read() } else { readRequested = true }
    }

    // MARK: - The proxied reply (called by `ProxyExchange`, on the event loop)

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func write(_ part: HTTPResponsePart, flush: Bool) {
        guard let context else { return }
        if flush { context.writeAndFlush(wrapOutboundOut(part), promise: nil) } else { context.write(wrapOutboundOut(part), promise: nil) }
    }

    /// The exchange has written its whole reply (or given up on it). `close` ends the connection: the client asked
    /// for that, or the reply was cut short and must not look complete.
    func exchangeFinished(_ finished: ProxyExchange, close: Bool) {
        guard exchange === finished else { return }
        exchange = nil
        guard let context else { return }
        if close || finished.call.head.headerFields[.connection]?.lowercased() == "close" {
            context.close(promise: nil)
        } else {
            resume()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { exchange?.clientWritable() }
        context.fireChannelWritabilityChanged()
    }
}
