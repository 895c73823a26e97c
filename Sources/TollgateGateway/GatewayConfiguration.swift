import Foundation

/// Settings of the metering proxy.
public struct GatewayConfiguration: Sendable {
    /// Largest request body accepted, in bytes.
    public var maximumRequestBytes: Int = 32 << 20
    /// Largest non-streamed upstream reply read, in bytes.
    public var maximumResponseBytes: Int = 64 << 20
    /// Environment that backend `credential_env` names are looked up in.
    public var credentials: [String: String] = [:]
    /// At most this many attempts per request across a pool's backends (the first included).
    public var failoverAttempts: Int = 3
    /// No new attempt starts this long after the request came in.
    public var failoverDeadline: Duration = .seconds(60)

    public init(
        maximumRequestBytes: Int = 32 << 20, maximumResponseBytes: Int = 64 << 20, credentials: [String: String] = [:], failoverAttempts: Int = 3,
        failoverDeadline: Duration = .seconds(60)
    ) {
        self.maximumRequestBytes = maximumRequestBytes
        self.maximumResponseBytes = maximumResponseBytes
        self.credentials = credentials
        self.failoverAttempts = failoverAttempts
        self.failoverDeadline = failoverDeadline
    }
}
