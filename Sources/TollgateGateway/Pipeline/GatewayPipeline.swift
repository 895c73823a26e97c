import Logging

/// The request path as an ordered list of steps (see `GatewayStep` for their contract), run by `ProxyExchange` for
/// each proxied request without naming any of them.
struct GatewayPipeline: Sendable {
    let steps: [any GatewayStep]
    /// The steps that run again when an attempt fails over to another backend (choose the backend, forward): no step
    /// in it registers after-reply work, so the request is metered and settled once whatever the attempts.
    let rerouting: Range<Int>

    init(steps: [any GatewayStep], rerouting: Range<Int> = 0..<0) {
        self.steps = steps
        self.rerouting = rerouting
    }

    /// Where running the steps got to.
    enum Outcome {
        /// Every step passed: `request.forwarding` says how the request is answered.
        case forward
        /// A step refused the request.
        case refused(GatewayError)
        /// The step at `resumeAt` asked for `work` first; run it off the event loop, then `run(_:from: resumeAt)`.
        case suspended(resumeAt: Int, work: @Sendable () async -> Void)
    }

    /// Runs the steps in order from `start` until one refuses, one must wait, or all have passed.
    func run(_ request: inout ProxyRequest, from start: Int = 0) -> Outcome {
        var index = start
        while index < steps.count {
            do throws(GatewayError) {
                switch try steps[index].run(&request) {
                case .next: index += 1
                case .retry(let work): return .suspended(resumeAt: index, work: work)
                }
            } catch {
                return .refused(error)
            }
        }
        return .forward
    }

    /// After a failed attempt: runs the rerouting steps again, which move the request to the next backend of its
    /// pool (`.forward`) or refuse it (no member left).
    func reroute(_ request: inout ProxyRequest) -> Outcome {
        for index in rerouting {
            do throws(GatewayError) {
                guard case .next = try steps[index].run(&request) else {
                    return .refused(.internalError(requestID: request.requestID.lowercasedString))
                }
            } catch {
                return .refused(error)
            }
        }
        return rerouting.isEmpty ? .refused(.internalError(requestID: request.requestID.lowercasedString)) : .forward
    }

    /// Runs the steps to the end, waiting where a step asks to (for callers already off the event loop: `GET /v1/models`).
    func runToEnd(_ request: inout ProxyRequest) async throws(GatewayError) {
        var start = 0
        while true {
            switch run(&request, from: start) {
            case .forward: return
            case .refused(let error): throw error
            case .suspended(let resumeAt, let work):
                await work()
                start = resumeAt
            }
        }
    }
}

extension GatewayPipeline {
    /// Who the caller is and whether it may call at all: authenticate → resolve the caller → check access.
    static func identification(catalog: GatewayCatalog) -> [any GatewayStep] {
        [AuthenticateStep(catalog: catalog), ResolveCallerStep(), CheckAccessStep()]
    }

    /// The proxy's request path, in order.
    static func standard(
        catalog: GatewayCatalog, limiter: TokenLimiter, writer: any UsageRecorder, metrics: GatewayMetrics, configuration: GatewayConfiguration,
        health: BackendHealth, targets: UpstreamTargetCache, logger: Logger
    ) -> GatewayPipeline {
        let before: [any GatewayStep] = identification(catalog: catalog) + [ModelAccessStep(), AdmitStep(limiter: limiter)]
        let routing: [any GatewayStep] = [
            ChooseBackendStep(health: health),
            ForwardStep(credentials: configuration.credentials, targets: targets, logger: logger),
        ]
        let after: [any GatewayStep] = [MeterStep(writer: writer, metrics: metrics), SettleStep(limiter: limiter)]
        return GatewayPipeline(steps: before + routing + after, rerouting: before.count..<(before.count + routing.count))
    }
}
