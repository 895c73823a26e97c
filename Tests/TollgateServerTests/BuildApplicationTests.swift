import Foundation
import Logging
import Testing
import TollgateCore
import TollgateServer
import TollgateStore

/// `buildApplication` checks every setting that needs no database before it starts the embedded PostgreSQL, and stops
/// the cluster it started on every failure path after that, so a bad start leaves nothing running.
struct BuildApplicationTests {
    static let logger: Logger = {
        var logger = Logger(label: "tollgate.tests")
        logger.logLevel = .critical
        return logger
    }()

    /// The embedded default (no `DATABASE_URL`) in a directory of its own.
    static func embeddedConfiguration() -> TollgateConfiguration {
        var configuration = TollgateConfiguration()
        configuration.port = 0
        configuration.dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-build-\(UUID().uuidString)")
        configuration.adminToken = Secret("build-application-test-token")
        return configuration
    }

    static func write(_ text: String, name: String) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-build-\(UUID().uuidString)-\(name)")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    enum BadSetting: String, CaseIterable, Sendable {
        case caFileWithoutCertificate, rulesEnvironment, policyFileMissing, policyFileInvalid
    }

    @Test(arguments: BadSetting.allCases)
    func aBadSettingFailsBeforeTheEmbeddedClusterIsStarted(_ setting: BadSetting) async throws {
        var configuration = Self.embeddedConfiguration()
        defer { try? FileManager.default.removeItem(at: configuration.dataDirectory) }
        let expected: String
        switch setting {
        case .caFileWithoutCertificate:
            configuration.upstreamCAFile = try Self.write("not a certificate\n", name: "ca.pem")
            expected = "TOLLGATE_UPSTREAM_CA_FILE"
        case .rulesEnvironment:
            configuration.credentials = ["TOLLGATE_BUDGET_SWEEP_SECONDS": "soon"]
            expected = "TOLLGATE_BUDGET_SWEEP_SECONDS"
        case .policyFileMissing:
            configuration.policyFile = "/nonexistent/tollgate.yaml"
            expected = "/nonexistent/tollgate.yaml"
        case .policyFileInvalid:
            configuration.policyFile = try Self.write("subscriptions:\n  - id: a\n    state: sleeping\n", name: "tollgate.yaml")
            expected = "subscriptions[0].state"
        }
        let error = await #expect(throws: (any Error).self) {
            _ = try await buildApplication(configuration: configuration, logger: Self.logger)
        }
        let message = error.map { String(describing: $0) } ?? ""
        #expect(message.contains(expected), "\(message)")
        // Nothing was started: the embedded cluster was never even created.
        let cluster = EmbeddedPostgres(baseDirectory: configuration.dataDirectory, logger: Self.logger)
        #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory.path))
    }

    @Test func aFailureAfterTheClusterStartedStopsIt() async throws {
        var configuration = Self.embeddedConfiguration()
        defer { try? FileManager.default.removeItem(at: configuration.dataDirectory) }
        // Valid as a file, refused by the database: the same price version twice with different amounts.
        configuration.policyFile = try Self.write(
            """
            prices:
              - model: gpt-4o
                currency: USD
                effective_from: 2026-10-01
                input_per_1m: 2.5
                output_per_1m: 10
              - model: gpt-4o
                currency: USD
                effective_from: 2026-10-01
                input_per_1m: 3
                output_per_1m: 12
            """, name: "tollgate.yaml")
        await #expect(throws: PriceImportError.self) {
            _ = try await buildApplication(configuration: configuration, logger: Self.logger)
        }
        let cluster = EmbeddedPostgres(baseDirectory: configuration.dataDirectory, logger: Self.logger)
        // The cluster was created and started (its data directory exists), then stopped: no postmaster is left.
        #expect(FileManager.default.fileExists(atPath: cluster.dataDirectory.appendingPathComponent("PG_VERSION").path))
        #expect(!FileManager.default.fileExists(atPath: cluster.dataDirectory.appendingPathComponent("postmaster.pid").path))
    }
}
