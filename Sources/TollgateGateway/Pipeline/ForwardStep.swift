import Logging
import NIOCore
import TollgateCore
import TollgateStore

/// Has the chosen backend's dialect rewrite the request (upstream model, `stream_options.include_usage`) and say how it
/// is forwarded: to which URL with which credential, or answered locally (`mock`).
///
/// Reads `request.choice`, `request.call` and `request.body`; writes `request.forwarding`, the rewritten
/// `request.body` and the choice's `forwardedBytes`/`injectedUsage`. Refuses with 502 `backend_misconfigured` (no base
/// URL, credential missing from the environment). Only what must change is changed; every other byte of the request is
/// forwarded as the client sent it.
struct ForwardStep: GatewayStep {
    let credentials: [String: String]
    let targets: UpstreamTargetCache
    let logger: Logger

    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        var choice = try request.required(request.choice)
        let call = try request.required(request.call)
        let rewrite = choice.dialect.rewrite(choice.json, route: choice.route, operation: call.operation, streamed: choice.streamed)
        if !rewrite.splices.isEmpty {
            choice.forwardedBytes = choice.json.applying(rewrite.splices)
            request.body = ByteBuffer(bytes: choice.forwardedBytes)
        }
        choice.injectedUsage = rewrite.injectedUsage
        request.choice = choice
        let context = DialectContext(credentials: credentials, targets: targets, logger: logger)
        request.forwarding = try choice.dialect.forwarding(request, choice: choice, call: call, context: context)
        return .next
    }
}
