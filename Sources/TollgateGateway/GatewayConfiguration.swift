import Foundation

/// Settings of the metering proxy.
public struct GatewayConfiguration: Sendable {
    /// Largest request body accepted, in bytes.
    public var maximumRequestBytes: Int = 32 << 20
    /// Largest non-streamed upstream reply read, in bytes.
    public var maximumResponseBytes: Int = 64 << 20
    /// Environment that backend `credential_env` names are looked up in.
    public var credentials: [String: String] = [:]

    public init(maximumRequestBytes: Int = 32 << 20, maximumResponseBytes: Int = 64 << 20, credentials: [String: String] = [:]) {
        self.maximumRequestBytes = maximumRequestBytes
        self.maximumResponseBytes = maximumResponseBytes
        self.credentials = credentials
    }
}
