import NIOCore
import TollgateCore

/// The reply the after-reply work sees.
struct ProxyReply {
    enum Content {
        /// A whole reply body.
        case whole(ByteBuffer)
        /// A stream, as its meter saw it pass (complete or cut short).
        case stream(SSEStreamMeter)
        /// No reply: the upstream could not be reached or timed out (`status` is the gateway's 502 or 504).
        case failed
    }
    let status: Int
    let content: Content
    /// The usage row, once the meter step has made it.
    var event: UsageEvent?
}
