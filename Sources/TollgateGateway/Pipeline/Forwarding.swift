import HTTPTypes
import NIOCore
import NIOHTTP1

/// How the forward step's dialect says the request is answered. The exchange carries it out.
enum Forwarding {
    /// Sent to an upstream over HTTP.
    case upstream(UpstreamTarget, headers: HTTPHeaders, body: ByteBuffer)
    /// Answered by the gateway itself (the `mock` backend), after `delayMilliseconds`.
    case local(LocalReply, delayMilliseconds: Int)
}

/// A reply the gateway makes itself: whole, or the events of a stream (metered like an upstream's).
enum LocalReply {
    case whole(HTTPResponse, ByteBuffer)
    case stream(HTTPResponse, [ByteBuffer])
}
