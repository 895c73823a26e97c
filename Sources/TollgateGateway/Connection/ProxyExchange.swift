import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import TollgateCore

/// One proxied request, from its complete body to the end of its reply, on the client connection's event loop: runs the
/// gateway's pipeline of steps (`GatewayPipeline`), carries out the forwarding they decided (upstream, or a reply the
/// gateway makes itself), runs the after-reply work they registered, and writes the reply to the client. It names no step.
///
/// Usage is spooled before the client sees the end of a reply, so an acknowledged request is never lost. A streamed
/// reply cut short (client gone, upstream broken off) is recorded with what passed, and the client's connection is
/// closed, so a cut-off stream never looks complete.
///
/// All state is touched on `eventLoop` only: upstream callbacks that arrive on another loop hop to it first. That
/// confinement is what makes the class safe to hand to the upstream client (`@unchecked Sendable`).
final class ProxyExchange: UpstreamBodyConsumer, @unchecked Sendable {
    let call: ProxyCall
    let gateway: GatewayRoutes
    let connection: GatewayChannelHandler
    let eventLoop: any EventLoop

    /// Where the reply stands; the exchange performs what it says.
    private var machine = ProxyExchangeStateMachine()
    /// The request as the pipeline's steps have decided it.
    private var request: ProxyRequest
    /// The upstream's stream while one passes (paused, resumed and abandoned as the machine says).
    private var upstreamStream: UpstreamStream?

    init(call: ProxyCall, body: ByteBuffer, gateway: GatewayRoutes, connection: GatewayChannelHandler, eventLoop: any EventLoop) {
        self.call = call
        self.gateway = gateway
        self.connection = connection
        self.eventLoop = eventLoop
        self.request = ProxyRequest(call: call, body: body)
    }

    private var logger: Logger { gateway.logger }

    // MARK: - Request

    func start() {
        logger.debug("Proxying", metadata: ["http.method": "\(call.head.method.rawValue)", "http.path": "\(call.head.path ?? "")"])
        advance(from: 0)
    }

    private func advance(from step: Int) {
        switch gateway.pipeline.run(&request, from: step) {
        case .forward:
            forward()
        case .refused(let error):
            if error.status == .internalServerError {
                // Only a pipeline whose steps are out of order refuses this way (`ProxyRequest.required`).
                logger.error("Pipeline step ran before the step it depends on", metadata: request.logMetadata())
            }
            answer(error.reply)
        case .suspended(let resumeAt, let work):
            // A step needs I/O first (a catalog reload for an unknown key): rare, and off the fast path.
            eventLoop.makeFutureWithTask { await work() }.whenSuccess { _ in self.advance(from: resumeAt) }
        }
    }

    private func forward() {
        guard let choice = request.choice, let forwarding = request.forwarding else {
            answer(GatewayError.internalError(requestID: request.requestID.lowercasedString).reply)
            return
        }
        switch forwarding {
        case .local(let reply, let delay):
            if delay > 0 {
                eventLoop.scheduleTask(in: .milliseconds(Int64(delay))) { self.answerLocally(reply, choice: choice) }
            } else {
                answerLocally(reply, choice: choice)
            }
        case .upstream(let target, let headers, let body):
            // A streamed request's reply that is not an event stream (an error, or an upstream that ignored `stream`) is
            // read whole, then answered and metered like a non-streamed one.
            let limit = gateway.configuration.maximumResponseBytes
            let reply: UpstreamClients.ReplyMode = choice.streamed ? .stream(self, otherwiseCollectUpTo: limit) : .collect(limit: limit)
            // The read timeout bounds each wait for bytes; a reply that keeps trickling in is not cut off.
            gateway.upstream.execute(
                target, headers: headers, body: body, connectTimeoutSeconds: choice.backend.connectTimeoutSeconds,
                readTimeoutSeconds: choice.backend.readTimeoutSeconds, reply: reply, on: eventLoop
            ).whenComplete { result in
                switch result {
                case .success(let response): self.upstreamReplied(response, choice: choice)
                case .failure(let error): self.upstreamFailed(error, choice: choice)
                }
            }
        }
    }

    // MARK: - Reply

    private func upstreamReplied(_ response: UpstreamResponse, choice: BackendChoice) {
        let status = Int(response.status.code)
        if choice.failsOver {
            // Only a reply read whole can be replaced: nothing of it has reached the client. An event stream's head
            // means the backend answered.
            if response.body != nil, status == 429 || status >= 500 {
                let outcome: BackendHealth.Outcome =
                    status == 429 ? .throttled(wait: RetryAfter.wait(in: response.headers, now: gateway.health.currentTime)) : .failed(reason: "HTTP \(status)")
                if failOver(after: outcome, choice: choice) { return }
            } else {
                gateway.health.record(.answered, for: choice.route, spec: choice.backend.circuitBreaker, at: gateway.health.currentTime)
            }
        }
        var head = GatewayRoutes.clientHead(for: response, requestID: request.requestID)
        addReplyHeaders(to: &head)
        if let body = response.body {
            replied(status: status, .whole(body))
            answer((head, body))
            return
        }
        // An event stream: pass it on as it comes, event by event.
        upstreamStream = response.stream
        switch machine.streamStarted(status: status, meter: makeMeter(choice), pausable: response.stream != nil) {
        case .writeHead:
            connection.write(.head(head), flush: true)
        case .abandon:
            response.stream?.abandon()
            finish(machine.streamEnded(error: nil))
        }
    }

    private func upstreamFailed(_ error: any Error, choice: BackendChoice) {
        let failure = UpstreamFailure(error)
        if choice.failsOver, failOver(after: .failed(reason: failure == .timeout ? "timeout" : "unreachable"), choice: choice) { return }
        var gatewayError = failure.gatewayError
        if case UpstreamClientError.replyTooLarge = error {
            logger.warning("Upstream reply too large", metadata: request.logMetadata(["backend": "\(choice.backend.name)"]))
        } else {
            logger.warning("Upstream request failed", metadata: request.logMetadata(["backend": "\(choice.backend.name)", "error": "\(error)"]))
        }
        replied(status: Int(gatewayError.status.code), .failed)
        gatewayError.headers[.xRequestID] = request.requestID.lowercasedString
        answer(gatewayError.reply)
    }

    /// Records a failed attempt and moves the request to the next member of its pool, if the attempts and the
    /// deadline allow (`GatewayConfiguration.failoverAttempts`, `failoverDeadline`): true when that happened, or when
    /// no member was left and the request got its 429/503 (`no_backend_available`). False leaves the failed
    /// attempt's reply to be passed on.
    private func failOver(after outcome: BackendHealth.Outcome, choice: BackendChoice) -> Bool {
        let health = gateway.health
        let instant = health.currentTime
        health.record(outcome, for: choice.route, spec: choice.backend.circuitBreaker, at: instant)
        let configuration = gateway.configuration
        let elapsed = Date().timeIntervalSince(request.startedAt)
        guard choice.attempt < configuration.failoverAttempts, Duration.seconds(elapsed) < configuration.failoverDeadline else { return false }
        switch gateway.pipeline.reroute(&request) {
        case .forward:
            logger.info(
                "Failing over", metadata: request.logMetadata(["backend": "\(choice.backend.name)", "failover.outcome": "\(outcome.label)",
                    "failover.next": "\(request.choice?.backend.name ?? "")", "failover.attempt": "\(request.choice?.attempt ?? 0)"]))
            forward()
        case .refused(var error):
            replied(status: Int(error.status.code), .failed)
            error.headers[.xRequestID] = request.requestID.lowercasedString
            answer(error.reply)
        case .suspended:
            return false
        }
        return true
    }

    /// The caller's own standing against its limits replaces whatever the upstream said under the same names (an
    /// upstream's `x-ratelimit-*` are its limits on the backend's key, not the caller's).
    private func addReplyHeaders(to head: inout HTTPResponse) {
        for field in request.replyHeaders { head.headerFields[field.name] = field.value }
    }

    private func answerLocally(_ reply: LocalReply, choice: BackendChoice) {
        switch reply {
        case .whole(var head, let body):
            addReplyHeaders(to: &head)
            replied(status: Int(head.status.code), .whole(body))
            answer((head, body))
        case .stream(var head, let events):
            addReplyHeaders(to: &head)
            // Metered whole even if the client has gone: the events are all here.
            if machine.streamStarted(status: Int(head.status.code), meter: makeMeter(choice), pausable: false) == .writeHead {
                connection.write(.head(head), flush: false)
            }
            for event in events { upstreamBody(event) }
            upstreamEnded(nil)
        }
    }

    private func makeMeter(_ choice: BackendChoice) -> SSEStreamMeter {
        choice.dialect.streamMeter(operation: call.operation, hideInjectedUsage: choice.injectedUsage)
    }

    /// Runs the after-reply work the steps registered (metering, settling the limits).
    private func replied(status: Int, _ content: ProxyReply.Content) {
        var reply = ProxyReply(status: status, content: content)
        request.replied(&reply)
    }

    /// Writes a whole reply and finishes.
    func answer(_ reply: (HTTPResponse, ByteBuffer), close: Bool = false) {
        var head = reply.0
        let body = reply.1
        head.headerFields[.contentLength] = String(body.readableBytes)
        switch machine.answer(close: close) {
        case .closeUnwritten:
            connection.exchangeFinished(self, close: true)
        case .write(let close):
            connection.write(.head(head), flush: false)
            if body.readableBytes > 0 { connection.write(.body(body), flush: false) }
            connection.write(.end(nil), flush: true)
            connection.exchangeFinished(self, close: close)
        }
    }

    // MARK: - Streamed bodies (UpstreamBodyConsumer)

    func upstreamBody(_ buffer: ByteBuffer) {
        guard eventLoop.inEventLoop else {
            eventLoop.execute { self.upstreamBody(buffer) }
            return
        }
        guard let out = machine.upstreamBody(buffer.readableBytesView) else { return }
        connection.write(.body(ByteBuffer(bytes: out)), flush: true)
        if machine.wroteToClient(clientWritable: connection.isWritable) { upstreamStream?.pause() }
    }

    func upstreamEnded(_ error: UpstreamClientError?) {
        guard eventLoop.inEventLoop else {
            eventLoop.execute { self.upstreamEnded(error) }
            return
        }
        finish(machine.streamEnded(error: error))
    }

    /// Meters an ended stream, then ends the reply as the machine says.
    private func finish(_ finished: ProxyExchangeStateMachine.StreamFinish?) {
        guard let finished else { return }
        upstreamStream = nil
        replied(status: finished.status, .stream(finished.meter))
        switch finished.end {
        case .closeUnwritten:
            connection.exchangeFinished(self, close: true)
        case .cutShort(let error):
            logger.info("Stream ended early", metadata: request.logMetadata(["error": "\(error)", "stream.content_events": "\(finished.meter.contentEvents)"]))
            connection.exchangeFinished(self, close: true)
        case .complete(let rest):
            if !rest.isEmpty { connection.write(.body(ByteBuffer(bytes: rest)), flush: false) }
            connection.write(.end(nil), flush: true)
            connection.exchangeFinished(self, close: false)
        }
    }

    // MARK: - The client's connection

    func clientWritable() {
        if machine.clientWritable() { upstreamStream?.resume() }
    }

    /// The client went away. A reply still awaited is recorded when it comes (the upstream bills it all the same); a
    /// stream is abandoned and recorded with what passed.
    func clientGone() {
        let stream = upstreamStream
        guard let finished = machine.clientGone() else { return }
        stream?.abandon()
        logger.info("Stream ended early", metadata: request.logMetadata(["error": "client went away", "stream.content_events": "\(finished.meter.contentEvents)"]))
        finish(finished)
    }
}
