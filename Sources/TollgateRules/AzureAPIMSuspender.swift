import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import TollgateCore

/// Where an Azure API Management instance is and how to get a token for Azure Resource Manager.
public struct AzureAPIMConfiguration: Sendable {
    /// `https://management.azure.com`; tests point it at a local fake.
    public var armBaseURL: String
    public var azureSubscriptionID: String
    public var resourceGroup: String
    public var serviceName: String
    public var apiVersion: String
    /// Microsoft Entra's `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`, or any OAuth2 token endpoint.
    public var tokenURL: String
    public var clientID: String
    public var clientSecret: Secret
    public var scope: String
    /// Attempts per request on 429, 5xx and transport errors, and ETag re-reads on 412.
    public var maxAttempts: Int
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var requestTimeout: Duration
    /// A cached token is replaced this long before it expires.
    public var tokenRefreshMargin: Duration
    /// The APIM subscription (`{sid}`) for a Tollgate subscription; the same id unless configured otherwise.
    public var apimSubscriptionName: @Sendable (SubscriptionID) -> String

    public init(
        armBaseURL: String = "https://management.azure.com", azureSubscriptionID: String, resourceGroup: String, serviceName: String,
        apiVersion: String = "2024-06-01-preview", tokenURL: String, clientID: String, clientSecret: Secret,
        scope: String = "https://management.azure.com/.default", maxAttempts: Int = 5, initialBackoff: Duration = .milliseconds(500),
        maxBackoff: Duration = .seconds(30), requestTimeout: Duration = .seconds(30), tokenRefreshMargin: Duration = .seconds(120),
        apimSubscriptionName: @escaping @Sendable (SubscriptionID) -> String = { $0.rawValue }
    ) {
        self.armBaseURL = armBaseURL
        self.azureSubscriptionID = azureSubscriptionID
        self.resourceGroup = resourceGroup
        self.serviceName = serviceName
        self.apiVersion = apiVersion
        self.tokenURL = tokenURL
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scope = scope
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.requestTimeout = requestTimeout
        self.tokenRefreshMargin = tokenRefreshMargin
        self.apimSubscriptionName = apimSubscriptionName
    }
}

/// Suspends and reactivates Azure API Management subscriptions through Azure Resource Manager.
///
/// Each transition reads the subscription first (for its state and `ETag`), sends nothing when it is already in the
/// wanted state, and otherwise PATCHes `{"properties":{"state":…}}` with `If-Match`; a 412 means someone changed it
/// meanwhile, so it reads again and retries. 429 (honouring `Retry-After`), 5xx and transport errors are retried with
/// exponential backoff.
public struct AzureAPIMSuspender: SubscriptionSuspender {
    public let http: HTTPClient
    public let configuration: AzureAPIMConfiguration
    let tokens: ClientCredentialsTokenProvider
    public var name: String { "azure-apim" }

    /// - Parameter http: the process's shared client (redirects disallowed).
    public init(http: HTTPClient, configuration: AzureAPIMConfiguration) {
        self.http = http
        self.configuration = configuration
        self.tokens = ClientCredentialsTokenProvider(http: http, configuration: configuration)
    }

    @discardableResult
    public func suspend(_ subscription: SubscriptionID, reason: SuspensionReason, logger: Logger) async throws -> SuspenderOutcome {
        try await transition(subscription, to: "suspended", allowedFrom: ["active"], logger: logger)
    }

    /// APIM keeps no record of who suspended, so `onlyIfSuspendedByRulesEngine` is decided by the caller from Tollgate's
    /// own records; here only a `suspended` subscription is reactivated (never a cancelled or expired one).
    @discardableResult
    public func resume(_ subscription: SubscriptionID, reason: SuspensionReason, onlyIfSuspendedByRulesEngine: Bool, logger: Logger) async throws
        -> SuspenderOutcome
    {
        try await transition(subscription, to: "active", allowedFrom: ["suspended"], logger: logger)
    }

    /// The ARM URL of one APIM subscription.
    public func resourceURL(for subscription: SubscriptionID) -> String {
        func segment(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? text }
        let c = configuration
        let base = c.armBaseURL.hasSuffix("/") ? String(c.armBaseURL.dropLast()) : c.armBaseURL
        return "\(base)/subscriptions/\(segment(c.azureSubscriptionID))/resourceGroups/\(segment(c.resourceGroup))"
            + "/providers/Microsoft.ApiManagement/service/\(segment(c.serviceName))/subscriptions/\(segment(c.apimSubscriptionName(subscription)))"
            + "?api-version=\(segment(c.apiVersion))"
    }

    private func transition(_ subscription: SubscriptionID, to wanted: String, allowedFrom: Set<String>, logger: Logger) async throws
        -> SuspenderOutcome
    {
        let url = resourceURL(for: subscription)
        var logger = logger
        logger[metadataKey: "subscription.id"] = "\(subscription)"
        for _ in 1...max(1, configuration.maxAttempts) {
            let read = try await send(.GET, url: url, body: nil, ifMatch: nil, operation: "GET apim subscription", logger: logger)
            guard read.status == 200 else { throw SuspenderError.managementAPI(status: read.status, operation: "GET apim subscription") }
            guard let etag = read.headers.first(name: "ETag") else {
                throw SuspenderError.managementAPI(status: read.status, operation: "GET apim subscription (no ETag)")
            }
            let current = try JSONDecoder().decode(APIMSubscription.self, from: Data(read.body.readableBytesView)).properties.state
            if current == wanted { return .alreadyInState }
            guard allowedFrom.contains(current) else {
                logger.info("APIM subscription left alone", metadata: ["apim.state": "\(current)", "apim.wanted": "\(wanted)"])
                return .refused
            }
            let body = #"{"properties":{"state":"\#(wanted)"}}"#
            let patch = try await send(.PATCH, url: url, body: body, ifMatch: etag, operation: "PATCH apim subscription", logger: logger)
            switch patch.status {
            case 200, 202, 204:
                logger.info("APIM subscription state changed", metadata: ["apim.state": "\(wanted)"])
                return .changed
            case 412:
                logger.debug("APIM subscription changed meanwhile; reading it again")
                continue
            default:
                throw SuspenderError.managementAPI(status: patch.status, operation: "PATCH apim subscription")
            }
        }
        throw SuspenderError.gaveUp(operation: "PATCH apim subscription", attempts: configuration.maxAttempts)
    }

    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    /// One ARM request with the bearer token, retried on 429, 5xx and transport errors; a 401 refreshes the token once.
    private func send(_ method: HTTPMethod, url: String, body: String?, ifMatch: String?, operation: String, logger: Logger) async throws -> Response
    {
        var refreshedToken = false
        var attempt = 0
        while true {
            attempt += 1
            var request = HTTPClientRequest(url: url)
            request.method = method
            request.headers.add(name: "Authorization", value: "Bearer \(try await tokens.token(logger: logger).value)")
            request.headers.add(name: "Accept", value: "application/json")
            if let ifMatch { request.headers.add(name: "If-Match", value: ifMatch) }
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: body))
            }
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: .init(configuration.requestTimeout))
            } catch {
                guard attempt < configuration.maxAttempts else { throw error }
                logger.warning("Management API request failed; retrying", metadata: ["http.operation": "\(operation)", "error": "\(error)"])
                try await Task.sleep(
                    for: RetryBackoff.delay(attempt: attempt, initial: configuration.initialBackoff, maximum: configuration.maxBackoff))
                continue
            }
            let status = Int(response.status.code)
            let bytes = try await response.body.collect(upTo: 1 << 20)
            if status == 401 && !refreshedToken {
                refreshedToken = true
                await tokens.invalidate()
                attempt -= 1
                continue
            }
            if status == 429 || (500...599).contains(status) {
                guard attempt < configuration.maxAttempts else { throw SuspenderError.gaveUp(operation: operation, attempts: attempt) }
                let delay =
                    RetryBackoff.retryAfter(response.headers.first(name: "Retry-After"), now: Date()).map { min($0, configuration.maxBackoff) }
                    ?? RetryBackoff.delay(attempt: attempt, initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
                logger.info(
                    "Management API asked to retry",
                    metadata: ["http.operation": "\(operation)", "http.status": "\(status)", "retry.delay": "\(delay)"])
                try await Task.sleep(for: delay)
                continue
            }
            return Response(status: status, headers: response.headers, body: bytes)
        }
    }

    struct APIMSubscription: Decodable {
        struct Properties: Decodable { var state: String }
        var properties: Properties
    }
}

/// Backoff arithmetic shared by the management adapters.
public enum RetryBackoff {
    /// `initial × 2^(attempt-1)`, capped at `maximum`, with up to 20 % jitter taken off so callers do not retry in lockstep.
    public static func delay(attempt: Int, initial: Duration, maximum: Duration) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let raw = initial * (1 << exponent)
        let capped = raw > maximum ? maximum : raw
        return capped * Double.random(in: 0.8...1.0)
    }

    /// A `Retry-After` value: delay-seconds or an HTTP-date. Nil when absent or unreadable.
    public static func retryAfter(_ value: String?, now: Date) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = .utc
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .milliseconds(max(0, Int(date.timeIntervalSince(now) * 1000)))
    }
}

/// OAuth2 client-credentials tokens (Microsoft Entra shape), cached until shortly before they expire.
/// Concurrent callers share one token request.
actor ClientCredentialsTokenProvider {
    private let http: HTTPClient
    private let configuration: AzureAPIMConfiguration
    private var cached: (token: Secret, refreshAt: ContinuousClock.Instant)?
    private var inFlight: Task<(Secret, ContinuousClock.Instant), any Error>?

    init(http: HTTPClient, configuration: AzureAPIMConfiguration) {
        self.http = http
        self.configuration = configuration
    }

    func token(logger: Logger) async throws -> Secret {
        if let cached, ContinuousClock.now < cached.refreshAt { return cached.token }
        if let inFlight { return try await inFlight.value.0 }
        let task = Task { [http, configuration] in try await Self.fetch(http: http, configuration: configuration, logger: logger) }
        inFlight = task
        defer { inFlight = nil }
        let (token, refreshAt) = try await task.value
        cached = (token, refreshAt)
        return token
    }

    func invalidate() { cached = nil }

    private static func fetch(http: HTTPClient, configuration: AzureAPIMConfiguration, logger: Logger) async throws -> (
        Secret, ContinuousClock.Instant
    ) {
        func encode(_ text: String) -> String {
            text.addingPercentEncoding(
                withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? text
        }
        let form = [
            ("grant_type", "client_credentials"), ("client_id", configuration.clientID),
            ("client_secret", configuration.clientSecret.value), ("scope", configuration.scope),
        ].map { "\($0.0)=\(encode($0.1))" }.joined(separator: "&")
        var attempt = 0
        while true {
            attempt += 1
            var request = HTTPClientRequest(url: configuration.tokenURL)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.headers.add(name: "Accept", value: "application/json")
            request.body = .bytes(ByteBuffer(string: form))
            let requestedAt = ContinuousClock.now
            let response = try await http.execute(request, timeout: .init(configuration.requestTimeout))
            let body = try await response.body.collect(upTo: 1 << 20)
            let status = Int(response.status.code)
            if (status == 429 || (500...599).contains(status)) && attempt < configuration.maxAttempts {
                let delay =
                    RetryBackoff.retryAfter(response.headers.first(name: "Retry-After"), now: Date()).map { min($0, configuration.maxBackoff) }
                    ?? RetryBackoff.delay(attempt: attempt, initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
                try await Task.sleep(for: delay)
                continue
            }
            guard status == 200 else { throw SuspenderError.tokenRequestFailed(status: status) }
            let decoded = try JSONDecoder().decode(TokenResponse.self, from: Data(body.readableBytesView))
            logger.debug("Fetched management API token", metadata: ["token.expires_in_s": "\(decoded.expiresIn)"])
            let lifetime = Duration.seconds(decoded.expiresIn)
            let refreshAt = requestedAt + (lifetime > configuration.tokenRefreshMargin ? lifetime - configuration.tokenRefreshMargin : .zero)
            return (Secret(decoded.accessToken), refreshAt)
        }
    }

    struct TokenResponse: Decodable {
        var accessToken: String
        var expiresIn: Int
        enum CodingKeys: String, CodingKey {
            case accessToken = "access_token"
            case expiresIn = "expires_in"
        }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            accessToken = try c.decode(String.self, forKey: .accessToken)
            // Entra sends a number; older endpoints a string.
            if let number = try? c.decode(Int.self, forKey: .expiresIn) {
                expiresIn = number
            } else {
                expiresIn = Int(try c.decode(String.self, forKey: .expiresIn)) ?? 0
            }
        }
    }
}
