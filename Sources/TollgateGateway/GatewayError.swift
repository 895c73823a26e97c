import Foundation
import HTTPTypes
import Logging
import Hummingbird
import TollgateCore

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`. The official SDKs surface it unchanged.
public struct OpenAIErrorEnvelope: Codable, Sendable {
    public struct Body: Codable, Sendable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: String?
    }
    public var error: Body
}

/// An error the gateway answers with, in the OpenAI shape. Messages are written for the caller: never SQL,
/// hostnames or key material. Codes are stable and documented in docs/errors.md.
public struct GatewayError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let type: String
    public let code: String
    public let message: String
    public var headers: HTTPFields = [:]

    public init(status: HTTPResponse.Status, type: String, code: String, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.headers = headers
    }

    public static let missingKey = GatewayError(
        status: .unauthorized, type: "invalid_request_error", code: "missing_api_key",
        message: "No subscription key was sent. Send it as `Authorization: Bearer <key>`, `api-key: <key>` or `Ocp-Apim-Subscription-Key: <key>`.")
    public static let invalidKey = GatewayError(
        status: .unauthorized, type: "invalid_request_error", code: "invalid_api_key",
        message: "The subscription key is not valid. Check that it is current; revoked keys stop working at once.")

    static func subscriptionInactive(_ id: SubscriptionID, state: SubscriptionState, reason: String?) -> GatewayError {
        let why = reason.map { " Reason: \($0)" } ?? ""
        return GatewayError(
            status: .forbidden, type: "insufficient_quota", code: state == .cancelled ? "subscription_cancelled" : "subscription_suspended",
            message: "Subscription \(id) is \(state.rawValue).\(why)")
    }

    static func unknownDeployment(_ name: String) -> GatewayError {
        GatewayError(
            status: .notFound, type: "invalid_request_error", code: "model_not_found",
            message: "The model or deployment '\(name)' is not served by this gateway. GET /v1/models lists what is.")
    }

    static func modelNotAllowed(_ name: String, subscription: SubscriptionID) -> GatewayError {
        GatewayError(
            status: .forbidden, type: "invalid_request_error", code: "model_not_allowed",
            message: "Subscription \(subscription) may not use the model or deployment '\(name)'. GET /v1/models lists what it may use.")
    }

    /// No member of `deployment`'s pool can take the request now: 429 with `Retry-After` at the earliest time one
    /// comes back (`back`), or 503 when no such time is known.
    static func noBackendAvailable(_ deployment: String, back: Date?, now: Date) -> GatewayError {
        guard let back else {
            return GatewayError(
                status: .serviceUnavailable, type: "api_error", code: "no_backend_available",
                message: "No backend serving '\(deployment)' could take the request; every one failed or is being probed. Try again shortly.",
                headers: [.retryAfter: "1", .retryAfterMilliseconds: "1000"])
        }
        let milliseconds = max(1, Int64((back.timeIntervalSince(now) * 1000).rounded(.up)))
        let seconds = (milliseconds + 999) / 1000
        return GatewayError(
            status: .tooManyRequests, type: "rate_limit_error", code: "no_backend_available",
            message: "Every backend serving '\(deployment)' is rate-limited or out of service. Retry after \(seconds) seconds.",
            headers: [.retryAfter: "\(seconds)", .retryAfterMilliseconds: "\(milliseconds)"])
    }

    static func invalidRequest(_ message: String, param: String? = nil) -> GatewayError {
        GatewayError(status: .badRequest, type: "invalid_request_error", code: "invalid_request", message: message)
    }

    static let bodyTooLarge = GatewayError(
        status: .contentTooLarge, type: "invalid_request_error", code: "request_too_large", message: "The request body is larger than this gateway accepts.")

    static let upstreamUnavailable = GatewayError(
        status: .badGateway, type: "api_error", code: "upstream_unavailable", message: "The upstream model service could not be reached. Try again shortly.")
    static let upstreamTimeout = GatewayError(
        status: .gatewayTimeout, type: "api_error", code: "upstream_timeout", message: "The upstream model service did not answer in time.")
    static let backendMisconfigured = GatewayError(
        status: .badGateway, type: "api_error", code: "backend_misconfigured",
        message: "The backend serving this model is not configured correctly on the gateway (its credential is missing). The platform team has been told.")

    static func internalError(requestID: String) -> GatewayError {
        GatewayError(status: .internalServerError, type: "api_error", code: "internal_error",
                     message: "The gateway failed to handle this request. Quote request id \(requestID) when reporting it.")
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let (head, body) = reply
        return Response(status: head.status, headers: head.headerFields, body: .init(byteBuffer: body))
    }

    /// The error as an HTTP reply: its status and headers, and the OpenAI error envelope as the body.
    var reply: (HTTPResponse, ByteBuffer) {
        let envelope = OpenAIErrorEnvelope(error: .init(message: message, type: type, param: nil, code: code))
        let data = (try? JSONEncoder().encode(envelope)) ?? Data(#"{"error":{"message":"error","type":"api_error"}}"#.utf8)
        var fields = headers
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(data.count)
        return (HTTPResponse(status: status, headerFields: fields), ByteBuffer(bytes: data))
    }

    static func methodNotAllowed(_ method: HTTPRequest.Method, path: String) -> GatewayError {
        GatewayError(status: .methodNotAllowed, type: "invalid_request_error", code: "method_not_allowed", message: "\(method.rawValue) is not allowed on \(path).")
    }
}

/// Turns anything that is not already an OpenAI-shaped error into a generic 500 after logging it, so a client never
/// sees a stack trace, a SQL error or an internal hostname. Hummingbird's own HTTP errors (404, 405, 413) are
/// re-shaped too, so OpenAI SDKs can read them.
public struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as GatewayError {
            throw error
        } catch let error as HTTPError {
            switch error.status {
            case .notFound:
                throw GatewayError(status: .notFound, type: "invalid_request_error", code: "unknown_url",
                                   message: "Unknown request URL: \(request.method.rawValue) \(request.uri.path).")
            case .contentTooLarge: throw GatewayError.bodyTooLarge
            case .methodNotAllowed:
                throw GatewayError.methodNotAllowed(request.method, path: request.uri.path)
            default:
                throw GatewayError(status: error.status, type: "invalid_request_error", code: "invalid_request", message: error.body ?? "Invalid request.")
            }
        } catch {
            let requestID = request.headers[.xRequestID] ?? context.id
            context.logger.error("Request failed", metadata: ["error": "\(String(reflecting: error))"])
            throw GatewayError.internalError(requestID: requestID)
        }
    }
}

extension HTTPField.Name {
    static let xRequestID = Self("x-request-id")!
    static let apiKey = Self("api-key")!
    static let apimSubscriptionKey = Self("Ocp-Apim-Subscription-Key")!
    static let retryAfter = Self("retry-after")!
}
