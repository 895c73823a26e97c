import Logging

/// The request path as an ordered list of steps (see `GatewayStep` for their contract), run by `ProxyExchange` for
/// each proxied request without naming any of them.
struct GatewayPipeline: Sendable {
    let steps: [any GatewayStep]

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
        targets: UpstreamTargetCache, logger: Logger
    ) -> GatewayPipeline {
        GatewayPipeline(
            steps: identification(catalog: catalog) + [
                ModelAccessStep(),
                AdmitStep(limiter: limiter),
                ChooseBackendStep(),
                ForwardStep(credentials: configuration.credentials, targets: targets, logger: logger),
                MeterStep(writer: writer, metrics: metrics),
                SettleStep(limiter: limiter),
            ])
    }
}
