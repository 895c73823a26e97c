import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import TollgateCore
import TollgateStore

/// One proxied request as it goes through the pipeline: what the client sent, and what the steps so far have
/// established about it. Each step fills in its part (see `GatewayStep` for who writes what); a later step reads what an
/// earlier one wrote through `required(_:)`, which turns a pipeline put together in the wrong order into a 500, never a crash.
///
/// It lives inside the request's `ProxyExchange`, on the event loop: no step copies it or keeps it.
struct ProxyRequest {
    /// The request's headers (what the identification steps read).
    let headers: HTTPFields
    /// The proxied route and head the client sent; nil for a request that is only identified (`GET /v1/models`).
    let call: ProxyCall?
    /// The gateway's id for the request (UUIDv7 at `startedAt`): the usage row's key and the `x-request-id` of the reply.
    let requestID: UUID
    let startedAt: Date
    /// The body to forward: the client's bytes as received until the forward step rewrites them.
    var body: ByteBuffer

    // Authenticate.
    /// The catalog the request is decided against, as loaded when the key was found (one consistent snapshot).
    var catalog: CatalogSnapshot?
    var key: CatalogSnapshot.Key?
    /// The catalog was reloaded once for this request's unknown key (it is not reloaded twice).
    var reloadedCatalog = false

    // Resolve the caller.
    var subscription: CatalogSnapshot.Subscription?
    /// The limits of the subscription's product; nil when it has no product.
    var limits: ProductLimits?

    // Admit.
    /// What the request holds against its product's limits until it settles; nil when nothing limits it.
    var reservation: Reservation?
    /// Headers the gateway adds to the reply: where the caller stands against its limits (`x-ratelimit-*`).
    var replyHeaders = HTTPFields()
    /// The prompt and completion cap counted for admission, kept across a wait for a lease.
    var admissionEstimate: (prompt: Int, cap: Int)?
    /// How often admission waited for a lease.
    var admissionWaits = 0

    // Choose the backend.
    var choice: BackendChoice?

    // Forward.
    var forwarding: Forwarding?

    /// Work that runs once the reply is known, in the order registered (see `ReplyObserver`).
    var afterReply: [any ReplyObserver] = []

    init(call: ProxyCall, body: ByteBuffer, startedAt: Date = Date()) {
        self.init(headers: call.head.headerFields, call: call, body: body, startedAt: startedAt)
    }

    init(headers: HTTPFields, call: ProxyCall?, body: ByteBuffer, startedAt: Date = Date()) {
        self.headers = headers
        self.call = call
        self.body = body
        self.startedAt = startedAt
        self.requestID = UUIDv7.make(at: startedAt)
    }

    /// A value an earlier step must have set; a 500 `internal_error` when the pipeline's order is wrong.
    func required<Value>(_ value: Value?) throws(GatewayError) -> Value {
        guard let value else { throw GatewayError.internalError(requestID: requestID.lowercasedString) }
        return value
    }

    /// What identifies the request in a log line.
    func logMetadata(_ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        var metadata = extra
        metadata["tollgate.request_id"] = .stringConvertible(requestID)
        if let subscription { metadata["subscription.id"] = .stringConvertible(subscription.id) }
        return metadata
    }

    /// Runs the after-reply work registered by the steps, in order.
    func replied(_ reply: inout ProxyReply) {
        for observer in afterReply { observer.replied(&reply, to: self) }
    }
}
