/// One step of the request path. `GatewayPipeline.standard` lists them in the order they run:
/// authenticate → resolve the caller → check access → model access → admit → choose the backend → forward through the backend's
/// dialect → meter the reply → settle.
///
/// The contract every step keeps:
/// - **What it may read**: the client's request (`request.call`, `request.body`) and whatever the steps before it wrote
///   into `request`, read with `request.required(_:)`. A step holds only what every request shares (the catalog, the
///   limits, the usage writer, settings), given to it once when the pipeline is built; it keeps nothing of a request.
/// - **What it may change**: only its own part of `ProxyRequest` (the fields grouped under its name there), and the
///   body if forwarding needs it changed. It never writes to the client: the exchange does that.
/// - **How it refuses**: by throwing a `GatewayError` (OpenAI-shaped, with a stable `code` documented in
///   docs/errors.md). The exchange answers the client with it and no later step runs; nothing is forwarded, metered or
///   counted against a limit.
/// - **When it must wait**: it runs on the connection's event loop, synchronously, on every request, so it must not
///   block or start a task. The rare step that needs I/O first (a catalog reload for an unknown key) returns
///   `.retry(after:)`: the exchange runs that work off the event loop, then runs the same step again.
/// - **After the reply**: work that needs the reply (metering it, settling the limits) is registered by the step that
///   owns it, by appending a `ReplyObserver` to `request.afterReply`. It runs once the reply is known (whole, streamed
///   to its end or cut short, or failed upstream), in the order registered, and only for a request that was forwarded.
///
/// A new step (identity, model access, reservations, cache, content checks) is one more type conforming to this
/// protocol, in its own file in this folder, and one entry in `GatewayPipeline.standard`.
protocol GatewayStep: Sendable {
    /// Runs the step for `request`: enriches it and returns `.next`, asks to `.retry(after:)`, or throws the refusal.
    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome
}

/// What a step tells the pipeline.
enum StepOutcome {
    /// Go on with the next step.
    case next
    /// Run `work` off the event loop (rare, slow), then run this step again.
    case retry(after: @Sendable () async -> Void)
}

/// Work that runs once a forwarded request's reply is known (see `GatewayStep`). It must not block: it runs on the
/// event loop, before the client sees the end of the reply, so that usage is spooled before a request is acknowledged.
protocol ReplyObserver: Sendable {
    /// Called once per forwarded request. May add to `reply` what a later observer needs (the meter's usage row).
    func replied(_ reply: inout ProxyReply, to request: ProxyRequest)
}
