import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import TollgateCore

/// One proxied request, from its complete body to the end of its reply, on the client connection's event loop:
/// authenticate, plan, forward (or ask the mock backend), meter the reply, and write it to the client.
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

    private enum State {
        case planning
        case awaitingUpstream(GatewayRoutes.Plan)
        case streaming(GatewayRoutes.Plan, status: Int, SSEStreamMeter, UpstreamStream?)
        case done
    }
    private var state = State.planning
    private var clientPresent = true
    /// Reading from the upstream is paused until the client's connection drains.
    private var pausedForClient = false

    init(call: ProxyCall, gateway: GatewayRoutes, connection: GatewayChannelHandler, eventLoop: any EventLoop) {
        self.call = call
        self.gateway = gateway
        self.connection = connection
        self.eventLoop = eventLoop
    }

    private var logger: Logger { gateway.logger }

    // MARK: - Request

    func start(body: ByteBuffer) {
        let startedAt = Date()
        let requestID = UUIDv7.make(at: startedAt)
        logger.debug("Proxying", metadata: ["http.method": "\(call.head.method.rawValue)", "http.path": "\(call.head.path ?? "")"])
        do throws(GatewayError) {
            guard let caller = try gateway.authenticateNow(call.head.headerFields) else {
                // An unknown key while the catalog is not fresh: reload it once, then decide (rare; off the fast path).
                let gateway = self.gateway
                let headers = call.head.headerFields
                eventLoop.makeFutureWithTask { () async -> Result<GatewayRoutes.Caller, GatewayError> in
                    do throws(GatewayError) { return .success(try await gateway.authenticate(headers)) } catch { return .failure(error) }
                }.whenSuccess { result in
                    switch result {
                    case .success(let caller): self.proceed(caller: caller, body: body, requestID: requestID, startedAt: startedAt)
                    case .failure(let error): self.answer(error.reply)
                    }
                }
                return
            }
            proceed(caller: caller, body: body, requestID: requestID, startedAt: startedAt)
        } catch {
            answer(error.reply)
        }
    }

    private func proceed(caller: GatewayRoutes.Caller, body: ByteBuffer, requestID: UUID, startedAt: Date) {
        let plan: GatewayRoutes.Plan
        do throws(GatewayError) {
            plan = try gateway.plan(call, caller: caller, body: body, requestID: requestID, startedAt: startedAt)
        } catch {
            answer(error.reply)
            return
        }
        state = .awaitingUpstream(plan)
        if plan.backend.kind == .mock {
            let latency = plan.backend.mockLatencyMilliseconds
            if latency > 0 {
                eventLoop.scheduleTask(in: .milliseconds(Int64(latency))) { self.answerFromMock(plan) }
            } else {
                answerFromMock(plan)
            }
            return
        }
        let target: UpstreamTarget
        let headers: HTTPHeaders
        do throws(GatewayError) {
            (target, headers) = try gateway.upstreamRequest(plan, call: call)
        } catch {
            answer(error.reply)
            return
        }
        // A streamed request's reply that is not an event stream (an error, or an upstream that ignored `stream`) is
        // read whole, then answered and metered like a non-streamed one.
        let limit = gateway.configuration.maximumResponseBytes
        let reply: UpstreamClients.ReplyMode = plan.metering.streamed ? .stream(self, otherwiseCollectUpTo: limit) : .collect(limit: limit)
        // The read timeout bounds each wait for bytes; a reply that keeps trickling in is not cut off.
        gateway.upstream.execute(
            target, headers: headers, body: plan.body, connectTimeoutSeconds: plan.backend.connectTimeoutSeconds,
            readTimeoutSeconds: plan.backend.readTimeoutSeconds, reply: reply, on: eventLoop
        ).whenComplete { result in
            switch result {
            case .success(let response): self.upstreamReplied(response, plan: plan)
            case .failure(let error): self.upstreamFailed(error, plan: plan)
            }
        }
    }

    // MARK: - Reply

    private func upstreamReplied(_ response: UpstreamResponse, plan: GatewayRoutes.Plan) {
        let head = GatewayRoutes.clientHead(for: response, requestID: plan.metering.requestID)
        let status = Int(response.status.code)
        if let body = response.body {
            gateway.record(status: status, body: body, metering: plan.metering)
            answer((head, body))
            return
        }
        // An event stream: pass it on as it comes, event by event.
        state = .streaming(plan, status: status, SSEStreamMeter(operation: plan.metering.operation, hideInjectedUsage: plan.injectedUsage), response.stream)
        guard clientPresent else {
            response.stream?.abandon()
            finishStream(error: nil)
            return
        }
        connection.write(.head(head), flush: true)
    }

    private func upstreamFailed(_ error: any Error, plan: GatewayRoutes.Plan) {
        let failure = UpstreamFailure(error)
        var gatewayError = failure.gatewayError
        if case UpstreamClientError.replyTooLarge = error {
            logger.warning("Upstream reply too large", metadata: plan.metering.logMetadata(["backend": "\(plan.backend.name)"]))
        } else {
            logger.warning("Upstream request failed", metadata: plan.metering.logMetadata(["backend": "\(plan.backend.name)", "error": "\(error)"]))
        }
        gateway.land(
            plan.metering.event(status: Int(gatewayError.status.code), responseID: nil, model: nil, usage: .zero, source: .missing),
            metering: plan.metering)
        gatewayError.headers[.xRequestID] = plan.metering.requestID.lowercasedString
        answer(gatewayError.reply)
    }

    private func answerFromMock(_ plan: GatewayRoutes.Plan) {
        switch gateway.mockReply(plan) {
        case .whole(let head, let body):
            gateway.record(status: 200, body: body, metering: plan.metering)
            answer((head, body))
        case .stream(let head, let events):
            state = .streaming(plan, status: 200, SSEStreamMeter(operation: plan.metering.operation, hideInjectedUsage: plan.injectedUsage), nil)
            connection.write(.head(head), flush: false)
            for event in events { upstreamBody(event) }
            upstreamEnded(nil)
        }
    }

    /// Writes a whole reply and finishes.
    func answer(_ reply: (HTTPResponse, ByteBuffer), close: Bool = false) {
        var head = reply.0
        let body = reply.1
        head.headerFields[.contentLength] = String(body.readableBytes)
        state = .done
        guard clientPresent else {
            connection.exchangeFinished(self, close: true)
            return
        }
        connection.write(.head(head), flush: false)
        if body.readableBytes > 0 { connection.write(.body(body), flush: false) }
        connection.write(.end(nil), flush: true)
        connection.exchangeFinished(self, close: close)
    }

    // MARK: - Streamed bodies (UpstreamBodyConsumer)

    func upstreamBody(_ buffer: ByteBuffer) {
        guard eventLoop.inEventLoop else {
            eventLoop.execute { self.upstreamBody(buffer) }
            return
        }
        guard case .streaming(let plan, let status, var meter, let stream) = state else { return }
        state = .done  // let `meter` be uniquely referenced while it changes
        let out = meter.consume(buffer.readableBytesView)
        state = .streaming(plan, status: status, meter, stream)
        guard clientPresent, !out.isEmpty else { return }
        connection.write(.body(ByteBuffer(bytes: out)), flush: true)
        if !connection.isWritable, let stream, !pausedForClient {
            pausedForClient = true
            stream.pause()
        }
    }

    func upstreamEnded(_ error: UpstreamClientError?) {
        guard eventLoop.inEventLoop else {
            eventLoop.execute { self.upstreamEnded(error) }
            return
        }
        finishStream(error: error)
    }

    private func finishStream(error: UpstreamClientError?) {
        guard case .streaming(let plan, let status, var meter, _) = state else { return }
        state = .done
        let rest = meter.finish()
        gateway.record(status: status, stream: meter, metering: plan.metering)
        guard clientPresent else {
            connection.exchangeFinished(self, close: true)
            return
        }
        if let error {
            logger.info("Stream ended early", metadata: plan.metering.logMetadata(["error": "\(error)", "stream.content_events": "\(meter.contentEvents)"]))
            connection.exchangeFinished(self, close: true)
            return
        }
        if !rest.isEmpty { connection.write(.body(ByteBuffer(bytes: rest)), flush: false) }
        connection.write(.end(nil), flush: true)
        connection.exchangeFinished(self, close: false)
    }

    // MARK: - The client's connection

    func clientWritable() {
        guard pausedForClient, case .streaming(_, _, _, let stream) = state else { return }
        pausedForClient = false
        stream?.resume()
    }

    /// The client went away. A reply still awaited is recorded when it comes (the upstream bills it all the same); a
    /// stream is abandoned and recorded with what passed.
    func clientGone() {
        clientPresent = false
        guard case .streaming(let plan, _, let meter, let stream) = state else { return }
        stream?.abandon()
        logger.info("Stream ended early", metadata: plan.metering.logMetadata(["error": "client went away", "stream.content_events": "\(meter.contentEvents)"]))
        finishStream(error: nil)
    }
}
