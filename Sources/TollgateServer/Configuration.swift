import Foundation
import Logging
import NIOSSL
import TollgateCore
import TollgateStore

/// Everything `tollgate serve` needs, resolved from flags, then environment variables, then defaults.
/// docs/configuration.md lists every setting.
public struct TollgateConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    /// An existing PostgreSQL server (`DATABASE_URL`); nil runs the embedded cluster under `dataDirectory`.
    public var database: DatabaseLocation?
    public var dataDirectory: URL = URL(fileURLWithPath: ".tollgate")
    public var spoolDirectory: URL?
    /// `tollgate.yaml` applied at start-up.
    public var policyFile: String?
    /// Bearer token for /admin; when unset, one is generated into `<data-dir>/admin.token`.
    public var adminToken: Secret?
    public var logLevel: Logger.Level = .info
    public var flushInterval: Duration = .milliseconds(250)
    public var batchSize: Int = 5_000
    public var catalogRefreshInterval: Duration = .seconds(30)
    public var maximumRequestBytes: Int = 32 << 20
    /// Where backends' `credential_env` names are looked up: the process environment.
    public var credentials: [String: String] = [:]
    /// Pool size of the PostgreSQL client.
    public var databaseConnections: Int = 10
    /// Closed raw usage months older than this many months before the current one are dropped by `tollgate serve`
    /// (and by default by `tollgate usage retention`); nil keeps every month. Rollups and reports keep all history.
    public var usageRetentionMonths: Int?
    /// PEM certificates trusted for `https` backends besides the system's roots (a private CA in front of an internal gateway).
    public var upstreamCAFile: String?
    /// After SIGTERM, how long the listener stays open with `/readyz` answering 503 before the drain starts.
    public var shutdownDelay: Duration = .zero
    /// How long the drain (in-flight requests, spool load, leadership release) may take before what is left is cancelled.
    public var drainTimeout: Duration = .seconds(30)
    /// The clock the backends' health (cool-downs after a 429, circuit breakers) and the admin API read; tests move it.
    public var now: @Sendable () -> Date = { Date() }
    /// At most this many attempts per request across a pool's backends, the first included.
    public var failoverAttempts: Int = 3
    /// No failover attempt starts this long after the request came in.
    public var failoverDeadline: Duration = .seconds(60)

    public init() {}

    public var effectiveSpoolDirectory: URL { spoolDirectory ?? dataDirectory.appendingPathComponent("spool") }

    /// Reads the `TOLLGATE_*` variables and `DATABASE_URL`.
    /// - Throws: `ConfigurationError` naming the variable and what is wrong with it.
    public init(environment: [String: String]) throws(ConfigurationError) {
        self.init()
        credentials = environment
        func int(_ name: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = Int(text), range.contains(value) else {
                throw ConfigurationError(variable: name, message: "must be a whole number from \(range.lowerBound) to \(range.upperBound), got '\(text)'")
            }
            return value
        }
        if let host = environment["TOLLGATE_HOST"], !host.isEmpty { self.host = host }
        if let port = try int("TOLLGATE_PORT", 0...65535) { self.port = port }
        if let url = environment["DATABASE_URL"], !url.isEmpty {
            do {
                database = try DatabaseLocation(url: url)
            } catch {
                throw ConfigurationError(variable: "DATABASE_URL", message: error.description)
            }
        }
        if let dir = environment["TOLLGATE_DATA_DIR"], !dir.isEmpty { dataDirectory = URL(fileURLWithPath: dir) }
        if let dir = environment["TOLLGATE_SPOOL_DIR"], !dir.isEmpty { spoolDirectory = URL(fileURLWithPath: dir) }
        if let file = environment["TOLLGATE_CONFIG"], !file.isEmpty { policyFile = file }
        if let token = environment["TOLLGATE_ADMIN_TOKEN"], !token.isEmpty {
            guard token.count >= 16 else { throw ConfigurationError(variable: "TOLLGATE_ADMIN_TOKEN", message: "must be at least 16 characters") }
            adminToken = Secret(token)
        }
        if let level = environment["TOLLGATE_LOG_LEVEL"], !level.isEmpty {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw ConfigurationError(variable: "TOLLGATE_LOG_LEVEL", message: "must be one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = parsed
        }
        if let ms = try int("TOLLGATE_FLUSH_INTERVAL_MS", 10...60_000) { flushInterval = .milliseconds(ms) }
        if let size = try int("TOLLGATE_BATCH_SIZE", 1...1_000_000) { batchSize = size }
        if let seconds = try int("TOLLGATE_CATALOG_REFRESH_SECONDS", 1...3600) { catalogRefreshInterval = .seconds(seconds) }
        if let bytes = try int("TOLLGATE_MAX_REQUEST_BYTES", 1024...(1 << 30)) { maximumRequestBytes = bytes }
        if let connections = try int("TOLLGATE_DATABASE_CONNECTIONS", 2...200) { databaseConnections = connections }
        if let months = try int("TOLLGATE_USAGE_RETENTION_MONTHS", 0...1200) { usageRetentionMonths = months }
        if let seconds = try int("TOLLGATE_SHUTDOWN_DELAY_SECONDS", 0...300) { shutdownDelay = .seconds(seconds) }
        if let seconds = try int("TOLLGATE_DRAIN_TIMEOUT_SECONDS", 1...3600) { drainTimeout = .seconds(seconds) }
        if let attempts = try int("TOLLGATE_FAILOVER_ATTEMPTS", 1...10) { failoverAttempts = attempts }
        if let seconds = try int("TOLLGATE_FAILOVER_DEADLINE_SECONDS", 1...3600) { failoverDeadline = .seconds(seconds) }
        if let file = environment["TOLLGATE_UPSTREAM_CA_FILE"], !file.isEmpty {
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw ConfigurationError(variable: "TOLLGATE_UPSTREAM_CA_FILE", message: "cannot read '\(file)'")
            }
            upstreamCAFile = file
        }
    }

    /// The settings as safe-to-log metadata (no secrets: the database password and tokens are redacted by type).
    public var logMetadata: Logger.Metadata {
        [
            "config.listen": "\(host):\(port)", "config.database": "\(database.map { "\($0)" } ?? "embedded")",
            "config.data_dir": "\(dataDirectory.path)", "config.spool_dir": "\(effectiveSpoolDirectory.path)",
            "config.policy_file": "\(policyFile ?? "-")", "config.admin_token": "\(adminToken.map { "\($0)" } ?? "generated")",
        ]
    }
}

public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var variable: String
    public var message: String
    public var description: String { "\(variable) \(message)" }
}

extension TollgateConfiguration {
    /// TLS for `https` backends: the system's roots plus `upstreamCAFile`'s certificates.
    /// - Throws: `ConfigurationError` naming `TOLLGATE_UPSTREAM_CA_FILE` when the file yields no PEM certificate.
    func upstreamTLSConfiguration() throws(ConfigurationError) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let file = upstreamCAFile {
            let certificates = (try? NIOSSLCertificate.fromPEMFile(file)) ?? []
            guard !certificates.isEmpty else {
                throw ConfigurationError(variable: "TOLLGATE_UPSTREAM_CA_FILE", message: "'\(file)' holds no PEM certificate")
            }
            tls.additionalTrustRoots = [.certificates(certificates)]
        }
        return tls
    }
}
