import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import TollgateServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the metering gateway and admin API.",
        discussion: """
            Without DATABASE_URL, starts (creating on first run) an embedded PostgreSQL cluster under --data-dir,
            applies migrations, and stops the cluster again on SIGINT/SIGTERM. Usage is spooled to disk first and loaded
            into PostgreSQL in batches, so a database outage never loses usage.

            Routes: POST /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, GET /v1/models,
            POST /openai/deployments/{deployment}/chat/completions|completions|embeddings?api-version=...,
            GET /healthz, /readyz, /metrics, and the admin API under /admin/v1 (see docs/openapi.yaml).
            """)

    @Option(name: [.customLong("config"), .customShort("c")], help: ArgumentHelp("tollgate.yaml to apply at start-up. Default: $TOLLGATE_CONFIG.", valueName: "file"))
    var config: String?

    @Option(help: "Address to listen on. Default: $TOLLGATE_HOST or 127.0.0.1.")
    var host: String?

    @Option(help: "Port to listen on (0 picks a free one). Default: $TOLLGATE_PORT or 8080.")
    var port: Int?

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        var configuration = try database.configuration()
        if let config { configuration.policyFile = config }
        if let host { configuration.host = host }
        if let port { configuration.port = port }
        if let file = configuration.policyFile {
            // Check the file before touching the database, so a typo fails fast with file, line and field.
            do { _ = try PolicyFile.load(path: file) } catch { throw CLIError(error.description) }
        }
        let logger = try database.logger(defaultLevel: configuration.logLevel)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let host = configuration.host
        try await runServer(configuration: configuration, logger: logger, registry: registry) { port in
            logger.info("Tollgate is listening", metadata: ["listen.port": "\(port)"])
            // One line on stdout that scripts (and the end-to-end tests) can wait for.
            FileHandle.standardOutput.write(Data("tollgate listening on http://\(host):\(port)\n".utf8))
        }
    }
}
