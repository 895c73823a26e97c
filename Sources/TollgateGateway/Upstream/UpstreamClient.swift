import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The gateway's HTTP/1.1 client for upstream calls, driven from the event loop (futures and callbacks, no tasks):
/// keep-alive connections pooled per upstream, each request written in one flush (head and body together), the reply
/// either collected whole or its head handed over as soon as it arrives and its body streamed to a consumer with
/// back-pressure. It does what a metering proxy needs and nothing else: no redirects (a redirect must not carry a
/// backend credential elsewhere), no cookies, no decompression (the gateway reads usage out of the reply).
///
/// It replaced async-http-client on this path, whose general machinery (a per-request transaction, URL parsing, a
/// separate flush for the request head) was the largest part of the proxy's CPU time per request (bench/README.md).
public final class UpstreamClients: Service, Sendable {
    /// Idle connections per upstream and per event loop: a request takes one on the event loop it runs on when there is
    /// one, so its reply is read on the thread that answers the client, without a thread switch.
    private let pool: Mutex<[PoolKey: [ObjectIdentifier: [UpstreamConnection]]]> = Mutex([:])
    private let closed = Mutex(false)
    private let tls: NIOSSLContext?
    private let tlsError: (any Error & Sendable)?
    /// Idle connections kept per upstream; more are closed when they finish.
    let maximumIdlePerUpstream: Int

    /// - Parameter tlsConfiguration: how `https` upstreams are verified; the default trusts the system's roots.
    public init(tlsConfiguration: TLSConfiguration = .makeClientConfiguration(), maximumIdlePerUpstream: Int = 1_024) {
        do {
            tls = try NIOSSLContext(configuration: tlsConfiguration)
            tlsError = nil
        } catch {
            tls = nil
            tlsError = UpstreamClientError.tlsUnavailable(String(describing: error))
        }
        self.maximumIdlePerUpstream = maximumIdlePerUpstream
    }

    struct PoolKey: Hashable {
        let endpoint: UpstreamEndpoint
        let readTimeoutSeconds: Int
    }

    /// How a reply's body is handed over.
    enum ReplyMode {
        /// The whole body, in one buffer, once it has all arrived (refused past `limit` bytes): a request that did not
        /// ask for a stream has no per-chunk hand-over to wait for.
        case collect(limit: Int)
        /// An event stream (`text/event-stream`) piece by piece as it is read, to `consumer`, on the connection's event
        /// loop, the future completing with the head. Any other reply (an error, or an upstream that ignored the
        /// request's `stream`) is collected whole, as with `collect(limit:)`, and `consumer` hears nothing.
        case stream(any UpstreamBodyConsumer, otherwiseCollectUpTo: Int)
    }

    /// Sends one request. The future completes, on `eventLoop`, with the reply's head (and its whole body when
    /// collecting). A reused connection that the upstream had closed while idle is replaced, and the request sent again,
    /// only when no byte of a reply had come back on it (as Go's net/http does); any other failure fails the future.
    func execute(
        _ target: UpstreamTarget, method: HTTPMethod = .POST, headers: HTTPHeaders, body: ByteBuffer, connectTimeoutSeconds: Int,
        readTimeoutSeconds: Int, reply: ReplyMode, on eventLoop: any EventLoop
    ) -> EventLoopFuture<UpstreamResponse> {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: target.pathAndQuery, headers: headers)
        head.headers.replaceOrAdd(name: "host", value: target.hostHeader)
        head.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        let exchange = Exchange(
            key: PoolKey(endpoint: target.endpoint, readTimeoutSeconds: readTimeoutSeconds), head: head, body: body, reply: reply,
            connectTimeoutSeconds: connectTimeoutSeconds)
        return attempt(exchange, on: eventLoop)
    }

    /// One request as `attempt` needs it, possibly more than once.
    struct Exchange {
        let key: PoolKey
        let head: HTTPRequestHead
        let body: ByteBuffer
        let reply: ReplyMode
        let connectTimeoutSeconds: Int
    }

    private func attempt(_ exchange: Exchange, on eventLoop: any EventLoop) -> EventLoopFuture<UpstreamResponse> {
        guard let connection = checkOut(exchange.key, preferring: eventLoop) else {
            return connect(exchange.key, connectTimeoutSeconds: exchange.connectTimeoutSeconds, on: eventLoop)
                .flatMap { $0.send(exchange) }
                .hop(to: eventLoop)
        }
        return connection.send(exchange).hop(to: eventLoop).flatMapError { error in
            // Closed while idle: try the next pooled one, or a new connection.
            guard case UpstreamClientError.closedBeforeReply = error else { return eventLoop.makeFailedFuture(error) }
            return self.attempt(exchange, on: eventLoop)
        }
    }

    private func checkOut(_ key: PoolKey, preferring eventLoop: any EventLoop) -> UpstreamConnection? {
        let here = ObjectIdentifier(eventLoop as AnyObject)
        return pool.withLock { pool in
            // Popped in place: the lists are never copied.
            while let connection = pool[key]?[here]?.popLast() {
                if connection.channel.isActive { return connection }
            }
            for loop in pool[key].map({ Array($0.keys) }) ?? [] {
                while let connection = pool[key]?[loop]?.popLast() {
                    if connection.channel.isActive { return connection }
                }
            }
            return nil
        }
    }

    fileprivate func checkIn(_ connection: UpstreamConnection) {
        let loop = ObjectIdentifier(connection.channel.eventLoop as AnyObject)
        let kept = pool.withLock { pool -> Bool in
            guard !closed.withLock({ $0 }), connection.channel.isActive,
                pool[connection.key]?[loop]?.count ?? 0 < maximumIdlePerUpstream
            else { return false }
            pool[connection.key, default: [:]][loop, default: []].append(connection)
            return true
        }
        if !kept { connection.channel.close(promise: nil) }
    }

    /// A new connection lives on the event loop of the request that opened it (see `pool`).
    private func connect(_ key: PoolKey, connectTimeoutSeconds: Int, on eventLoop: any EventLoop) -> EventLoopFuture<UpstreamConnection> {
        let endpoint = key.endpoint
        if endpoint.tls && tls == nil { return eventLoop.makeFailedFuture(tlsError ?? UpstreamClientError.tlsUnavailable("no TLS context")) }
        // SNI carries host names only; an upstream addressed by IP is verified against the address alone.
        let serverName = endpoint.host.contains(":") || endpoint.host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : endpoint.host
        let tls = endpoint.tls ? self.tls : nil
        let readTimeout = TimeAmount.seconds(Int64(key.readTimeoutSeconds))
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(Int64(connectTimeoutSeconds)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls { try pipeline.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName)) }
                    // The request's headers were validated when the client's request was parsed, or are the gateway's own.
                    try pipeline.addHandler(HTTPRequestEncoder())
                    try pipeline.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try pipeline.addHandler(IdleStateHandler(readTimeout: readTimeout))
                    try pipeline.addHandler(UpstreamConnectionHandler())
                }
            }
        return bootstrap.connect(host: endpoint.host, port: endpoint.port)
            .flatMapErrorThrowing { error in
                if case ChannelError.connectTimeout = error { throw UpstreamClientError.connectTimeout }
                throw UpstreamClientError.connectFailed(String(describing: error))
            }
            .flatMapThrowing { [weak self] channel in
                let handler = try channel.pipeline.syncOperations.handler(type: UpstreamConnectionHandler.self)
                let connection = UpstreamConnection(key: key, channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
                // The handler offers the connection back when a reply has ended with keep-alive; the closure holds the
                // connection, so it is dropped when the channel closes.
                handler.release = { [weak self] in self?.checkIn(connection) }
                return connection
            }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        closed.withLock { $0 = true }
        let idle = pool.withLock { pool in
            defer { pool.removeAll() }
            return pool.values.flatMap { $0.values.flatMap { $0 } }
        }
        for connection in idle { try? await connection.channel.close() }
    }
}

/// An upstream's address, as pooled connections are keyed.
struct UpstreamEndpoint: Hashable, Sendable {
    var tls: Bool
    var host: String
    var port: Int
}

/// A request URL split for the client: where to connect, what to put in the request line and the `Host` header.
struct UpstreamTarget: Sendable, Equatable {
    var endpoint: UpstreamEndpoint
    var hostHeader: String
    var pathAndQuery: String

    /// `http(s)://host[:port][/path][?query]`; IPv6 hosts in brackets. Nil for anything else (user info, fragments,
    /// other schemes are not upstream URLs).
    init?(url: String) {
        let tls: Bool
        var rest: Substring
        if url.hasPrefix("https://") {
            tls = true
            rest = url.dropFirst("https://".count)
        } else if url.hasPrefix("http://") {
            tls = false
            rest = url.dropFirst("http://".count)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]
        guard !authority.isEmpty, !authority.contains("@"), !rest.contains("#") else { return nil }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { return nil }
        let port: Int
        if let portText {
            guard let value = Int(portText), (1...65_535).contains(value) else { return nil }
            port = value
        } else {
            port = tls ? 443 : 80
        }
        endpoint = UpstreamEndpoint(tls: tls, host: String(host), port: port)
        hostHeader = String(authority)
        pathAndQuery = rest.isEmpty ? "/" : (rest.hasPrefix("?") ? "/" + rest : String(rest))
    }
}

enum UpstreamClientError: Error, Equatable, CustomStringConvertible {
    case connectTimeout
    case connectFailed(String)
    case readTimeout
    /// The connection closed before any byte of a reply came back.
    case closedBeforeReply
    /// The connection closed, or failed, in the middle of a reply.
    case connectionLost(String)
    case replyTooLarge(Int)
    case tlsUnavailable(String)

    var description: String {
        switch self {
        case .connectTimeout: "connect timed out"
        case .connectFailed(let reason): "cannot connect: \(reason)"
        case .readTimeout: "read timed out"
        case .closedBeforeReply: "the upstream closed the connection before replying"
        case .connectionLost(let reason): "connection lost mid-reply: \(reason)"
        case .replyTooLarge(let limit): "reply larger than \(limit) bytes"
        case .tlsUnavailable(let reason): "TLS is unavailable: \(reason)"
        }
    }
}

/// A reply's head, and its body when it was collected.
struct UpstreamResponse: Sendable {
    let status: HTTPResponseStatus
    let headers: HTTPHeaders
    /// The whole body (`ReplyMode.collect`); nil when it streams to the consumer.
    let body: ByteBuffer?
    /// Controls the streamed body (`ReplyMode.stream`).
    let stream: UpstreamStream?
}

/// Receives a streamed reply's body, on the upstream connection's event loop. After `upstreamEnded` nothing more comes.
protocol UpstreamBodyConsumer: AnyObject, Sendable {
    func upstreamBody(_ buffer: ByteBuffer)
    /// The body is complete (`error` nil), or broke off.
    func upstreamEnded(_ error: UpstreamClientError?)
}

/// A streamed reply in progress: its consumer can pause reading while it lags (back-pressure), resume it, or abandon
/// the reply (the connection is then closed: the rest of a reply can't be skipped safely). Callable from any thread.
struct UpstreamStream: Sendable {
    fileprivate let handler: NIOLoopBound<UpstreamConnectionHandler>
    fileprivate let exchange: UInt64

    func pause() { onLoop { $0.pauseReading(exchange: exchange) } }
    func resume() { onLoop { $0.resumeReading(exchange: exchange) } }
    func abandon() { onLoop { $0.consumerGone(exchange: exchange) } }

    private func onLoop(_ body: @escaping @Sendable (UpstreamConnectionHandler) -> Void) {
        let handler = self.handler
        if handler.eventLoop.inEventLoop { body(handler.value) } else { handler.eventLoop.execute { body(handler.value) } }
    }
}

/// One pooled connection: its channel and the handler that runs one exchange at a time on it.
final class UpstreamConnection: Sendable {
    let key: UpstreamClients.PoolKey
    let channel: any Channel
    let handler: NIOLoopBound<UpstreamConnectionHandler>

    init(key: UpstreamClients.PoolKey, channel: any Channel, handler: NIOLoopBound<UpstreamConnectionHandler>) {
        self.key = key
        self.channel = channel
        self.handler = handler
    }

    /// Completes on the connection's event loop.
    func send(_ exchange: UpstreamClients.Exchange) -> EventLoopFuture<UpstreamResponse> {
        let promise = channel.eventLoop.makePromise(of: UpstreamResponse.self)
        let handler = self.handler
        if handler.eventLoop.inEventLoop {
            handler.value.start(exchange, promise: promise, handler: handler)
        } else {
            handler.eventLoop.execute { handler.value.start(exchange, promise: promise, handler: handler) }
        }
        return promise.futureResult
    }
}

/// Runs request/reply exchanges on one HTTP/1.1 connection, one at a time.
final class UpstreamConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private enum State {
        case idle
        case awaitingHead(EventLoopPromise<UpstreamResponse>, handler: NIOLoopBound<UpstreamConnectionHandler>, UpstreamClients.ReplyMode)
        case body(any UpstreamBodyConsumer, keepAlive: Bool)
        /// Collecting the whole reply before handing it over.
        case collecting(EventLoopPromise<UpstreamResponse>, HTTPResponseHead, ByteBuffer, limit: Int)
        /// The reply is still arriving but nobody reads it any more: the connection is closed.
        case closed
    }
    private var state = State.idle
    private var context: ChannelHandlerContext?
    /// Numbers the exchanges on this connection, so a late signal about an earlier reply's body is ignored.
    private var exchange: UInt64 = 0
    /// Reading is paused because the body's consumer lags (autoRead off); a read timeout does not apply then.
    private var paused = false
    var release: (() -> Void)?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func start(_ request: UpstreamClients.Exchange, promise: EventLoopPromise<UpstreamResponse>, handler: NIOLoopBound<UpstreamConnectionHandler>) {
        guard case .idle = state, let context, context.channel.isActive else {
            promise.fail(UpstreamClientError.closedBeforeReply)
            return
        }
        exchange &+= 1
        paused = false
        state = .awaitingHead(promise, handler: handler, request.reply)
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if request.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .awaitingHead(let promise, let handler, let reply) = state else { return }
            switch reply {
            case .collect(let limit):
                state = .collecting(promise, head, ByteBuffer(), limit: limit)
            case .stream(_, let limit) where !head.isEventStream:
                state = .collecting(promise, head, ByteBuffer(), limit: limit)
            case .stream(let consumer, _):
                state = .body(consumer, keepAlive: head.isKeepAlive)
                promise.succeed(UpstreamResponse(
                    status: head.status, headers: head.headers, body: nil, stream: UpstreamStream(handler: handler, exchange: exchange)))
            }
        case .body(var buffer):
            switch state {
            case .body(let consumer, _):
                consumer.upstreamBody(buffer)
            case .collecting(let promise, let head, var collected, let limit):
                guard collected.readableBytes + buffer.readableBytes <= limit else {
                    state = .closed
                    promise.fail(UpstreamClientError.replyTooLarge(limit))
                    context.close(promise: nil)
                    return
                }
                state = .idle  // let `collected` be uniquely referenced while it grows
                if collected.readableBytes == 0 { collected = buffer } else { collected.writeBuffer(&buffer) }
                state = .collecting(promise, head, collected, limit: limit)
            default:
                return
            }
        case .end:
            switch state {
            case .body(let consumer, let keepAlive):
                state = .idle
                if paused {
                    paused = false
                    context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                }
                // Back in the pool before the consumer learns the body ended, so its next request finds it there.
                if keepAlive { release?() } else { context.close(promise: nil) }
                consumer.upstreamEnded(nil)
            case .collecting(let promise, let head, let collected, _):
                state = .idle
                if head.isKeepAlive { release?() } else { context.close(promise: nil) }
                promise.succeed(UpstreamResponse(status: head.status, headers: head.headers, body: collected, stream: nil))
            default:
                return  // closed: the connection is going away, never back to the pool
            }
        }
    }

    func pauseReading(exchange: UInt64) {
        guard exchange == self.exchange, !paused, case .body = state, let context else { return }
        paused = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
    }

    func resumeReading(exchange: UInt64) {
        guard exchange == self.exchange, paused, let context else { return }
        paused = false
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
    }

    /// The body's consumer stopped before its end (the client went away): the rest can't be skipped safely, so close.
    func consumerGone(exchange: UInt64) {
        guard exchange == self.exchange, case .body = state, let context else { return }
        state = .closed
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let idle = event as? IdleStateHandler.IdleStateEvent, case .read = idle else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch state {
        case .awaitingHead, .body, .collecting:
            guard !paused else { return }
            fail(UpstreamClientError.readTimeout)
            context.close(promise: nil)
        case .idle, .closed:
            context.close(promise: nil)  // idle in the pool for a whole read timeout: let it go
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        lost(String(describing: error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        lost("connection closed")
        state = .closed
        release = nil
        context.fireChannelInactive()
    }

    /// The connection failed or closed. Before any byte of a reply came back — typically a connection the upstream had
    /// closed while idle, reset as the request arrived — the request may be sent again on another connection.
    private func lost(_ reason: String) {
        if case .awaitingHead = state {
            fail(UpstreamClientError.closedBeforeReply)
        } else {
            fail(UpstreamClientError.connectionLost(reason))
        }
    }

    private func fail(_ error: UpstreamClientError) {
        switch state {
        case .awaitingHead(let promise, _, _), .collecting(let promise, _, _, _):
            state = .closed
            promise.fail(error)
        case .body(let consumer, _):
            state = .closed
            consumer.upstreamEnded(error)
        case .idle, .closed:
            break
        }
    }
}

extension HTTPResponseHead {
    var isEventStream: Bool { headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") ?? false }
}
