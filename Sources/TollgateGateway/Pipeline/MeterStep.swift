import Foundation
import Metrics
import NIOCore
import TollgateCore
import TollgateStore

/// Meters the reply: registers the after-reply work that reads the usage the reply reports (through the backend's
/// dialect), makes the usage row, spools it, and counts the request in the metrics.
///
/// Reads `request.choice` and `request.subscription`; adds itself to `request.afterReply`; never refuses. After the
/// reply it sets `reply.event`. Usage is `reported` when the reply carries it, `estimated` (the request's prompt and the
/// streamed text, counted by the model's tokenizer) for a success without it, `missing` for an error that generated nothing.
final class MeterStep: GatewayStep, ReplyObserver {  // a class: registering it per request is a retain, not a boxed copy
    let writer: any UsageRecorder
    let metrics: GatewayMetrics

    init(writer: any UsageRecorder, metrics: GatewayMetrics) {
        self.writer = writer
        self.metrics = metrics
    }

    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        request.afterReply.append(self)
        return .next
    }

    func replied(_ reply: inout ProxyReply, to request: ProxyRequest) {
        guard let choice = request.choice, let subscription = request.subscription, let call = request.call else { return }
        let metering = Metering(request: request, choice: choice, subscription: subscription, operation: call.operation)
        let event: UsageEvent
        switch reply.content {
        case .whole(let body):
            let object = JSONObjectReader(document: Array(body.readableBytesView))
            if let usage = object.flatMap(choice.dialect.usage(ofReply:)) {
                event = metering.event(status: reply.status, responseID: object?.string("id"), model: object?.string("model"), usage: usage, source: .reported)
            } else if (200..<300).contains(reply.status) {
                // A success without usage (a backend that never reports it): bill the estimate, marked as such.
                event = metering.event(
                    status: reply.status, responseID: object?.string("id"), model: object?.string("model"),
                    usage: TokenUsage(promptTokens: metering.estimatedPromptTokens, completionTokens: 0), source: .estimated)
            } else {
                event = metering.event(status: reply.status, responseID: nil, model: nil, usage: .zero, source: .missing)
            }
        case .stream(let meter):
            if let usage = meter.usage {
                event = metering.event(status: reply.status, responseID: meter.responseID, model: meter.model, usage: usage, source: .reported)
            } else if meter.contentEvents == 0 && !(200..<300).contains(reply.status) {
                // An error reply that generated nothing: nothing to count.
                event = metering.event(status: reply.status, responseID: meter.responseID, model: meter.model, usage: .zero, source: .missing)
            } else {
                // No usage came: the prompt counted from the request, the completion from the text that passed.
                let usage = TokenUsage(promptTokens: metering.estimatedPromptTokens, completionTokens: metering.estimatedCompletionTokens(meter))
                event = metering.event(status: reply.status, responseID: meter.responseID, model: meter.model, usage: usage, source: .estimated)
            }
        case .failed:
            event = metering.event(status: reply.status, responseID: nil, model: nil, usage: .zero, source: .missing)
        }
        writer.record(event)
        count(metering, status: event.httpStatus, usage: event.usage)
        if choice.failsOver, (200..<300).contains(event.httpStatus) {
            // The pool is ordered by priority: its first member's is the first priority.
            metrics.poolRequests(deployment: choice.route.deployment, overflow: choice.route.priority > choice.pool[0].priority).increment()
        }
        reply.event = event
    }

    /// Bounded labels only: route, backend, model (from configuration) and status.
    private func count(_ metering: Metering, status: Int, usage: TokenUsage) {
        let series = metrics.series(route: metering.operation.rawValue, backend: metering.backend, model: metering.requestedModel, status: status)
        series.requests.increment()
        series.duration.recordNanoseconds(Int64(Date().timeIntervalSince(metering.startedAt) * 1_000_000_000))
        series.promptTokens.increment(by: usage.promptTokens)
        series.completionTokens.increment(by: usage.completionTokens)
    }
}
