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

    /// How a reply's body is handed over (`UpstreamReplyMode`), to a consumer of any type.
    typealias ReplyMode = UpstreamReplyMode<any UpstreamBodyConsumer>

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
            handler.value.start(exchange, promise: promise)
        } else {
            handler.eventLoop.execute { handler.value.start(exchange, promise: promise) }
        }
        return promise.futureResult
    }
}

/// Runs request/reply exchanges on one HTTP/1.1 connection, one at a time: feeds what happens to its
/// `UpstreamConnectionStateMachine` and performs the actions it returns.
final class UpstreamConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    typealias StateMachine = UpstreamConnectionStateMachine<EventLoopPromise<UpstreamResponse>, any UpstreamBodyConsumer>

    private var machine = StateMachine()
    private var context: ChannelHandlerContext?
    var release: (() -> Void)?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func start(_ request: UpstreamClients.Exchange, promise: EventLoopPromise<UpstreamResponse>) {
        switch machine.start(promise, reply: request.reply, channelActive: context?.channel.isActive ?? false) {
        case .fail(let promise, let error):
            promise.fail(error)
        case .sendRequest:
            guard let context else { preconditionFailure("an active channel has a context") }
            context.write(wrapOutboundOut(.head(request.head)), promise: nil)
            if request.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): perform(machine.headReceived(head), context: context)
        case .body(let buffer): perform(machine.bodyReceived(buffer), context: context)
        case .end: perform(machine.endReceived(), context: context)
        }
    }

    func pauseReading(exchange: UInt64) {
        guard let context else { return }
        perform(machine.pauseReading(exchange: exchange), context: context)
    }

    func resumeReading(exchange: UInt64) {
        guard let context else { return }
        perform(machine.resumeReading(exchange: exchange), context: context)
    }

    /// The body's consumer stopped before its end (the client went away): the rest can't be skipped safely, so close.
    func consumerGone(exchange: UInt64) {
        guard let context else { return }
        perform(machine.consumerGone(exchange: exchange), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let idle = event as? IdleStateHandler.IdleStateEvent, case .read = idle else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        perform(machine.readTimedOut(), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        perform(machine.errorCaught(error), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        perform(machine.channelInactive(), context: context)
        release = nil
        context.fireChannelInactive()
    }

    /// The machine has already moved on when an action runs, so a callback that reenters the handler (a consumer's
    /// next request on this connection, back in the pool) finds it in its new state.
    private func perform(_ action: StateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .forwardHead(let promise, let head, let exchange):
            let stream = UpstreamStream(handler: NIOLoopBound(self, eventLoop: context.eventLoop), exchange: exchange)
            promise.succeed(UpstreamResponse(status: head.status, headers: head.headers, body: nil, stream: stream))
        case .deliverBody(let consumer, let buffer):
            consumer.upstreamBody(buffer)
        case .succeedCollected(let promise, let head, let body, let after):
            replyEnded(after, context: context)
            promise.succeed(UpstreamResponse(status: head.status, headers: head.headers, body: body, stream: nil))
        case .endStream(let consumer, let resumeReading, let after):
            if resumeReading { context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in } }
            // Back in the pool before the consumer learns the body ended, so its next request finds it there.
            replyEnded(after, context: context)
            consumer.upstreamEnded(nil)
        case .failPromise(let promise, let error, let close):
            promise.fail(error)
            if close { context.close(promise: nil) }
        case .failConsumer(let consumer, let error, let close):
            consumer.upstreamEnded(error)
            if close { context.close(promise: nil) }
        case .pauseReading:
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        case .resumeReading:
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        case .close:
            context.close(promise: nil)
        }
    }

    private func replyEnded(_ after: StateMachine.AfterReply, context: ChannelHandlerContext) {
        switch after {
        case .backToPool: release?()
        case .close: context.close(promise: nil)
        }
    }
}
