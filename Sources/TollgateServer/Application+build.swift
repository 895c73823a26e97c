import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOSSL
import Logging
import Prometheus
import ServiceLifecycle
import TollgateCore
import TollgateGateway
import TollgateRules
import TollgateStore
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The parts of a running Tollgate that tests and the CLI reach into.
public struct TollgateRuntime: Sendable {
    public let database: PostgresDatabase
    public let catalog: GatewayCatalog
    public let writer: UsageWriter
    public let adminToken: Secret
}

/// The composition root: the only place that constructs clients, repositories and services. `tollgate serve` and the
/// tests both call it.
///
/// It first checks everything that needs no database (settings, the CA file, the rules engine's variables, the policy
/// file, the spool and admin-token directories), so a bad setting fails before anything is started. Then it starts the
/// embedded PostgreSQL if needed, applies migrations and `--config`, and loads the catalog, so the server answers
/// correctly from its first request; if any of that fails, the cluster it started is stopped again.
public func buildApplication(
    configuration: TollgateConfiguration, logger: Logger, registry: PrometheusCollectorRegistry? = nil,
    drain: DrainState = DrainState(), onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> (application: some ApplicationProtocol, runtime: TollgateRuntime) {
    // 1. No I/O beyond local files: a configuration error changes nothing and starts nothing.
    let upstreamTLS = try configuration.upstreamTLSConfiguration()
    let rules: RulesConfiguration
    do {
        rules = try RulesConfiguration.parse(environment: configuration.credentials)
    } catch {
        throw ConfigurationError(variable: "TOLLGATE_* (rules engine)", message: error.description)
    }
    let policyDocument = try configuration.policyFile.map { try PolicyFile.load(path: $0) }
    let spool = try UsageSpool(directory: configuration.effectiveSpoolDirectory)
    let adminToken = try configuration.adminToken ?? AdminToken.readOrCreate(in: configuration.dataDirectory)

    // 2. The database: from here on, a failure stops the cluster this call started.
    let resolution = try await DatabaseResolution.resolve(configuration: configuration, logger: logger)
    do {
        return try await assemble(
            configuration: configuration, database: resolution, upstreamTLS: upstreamTLS, rules: rules, policyDocument: policyDocument,
            spool: spool, adminToken: adminToken, logger: logger, registry: registry, drain: drain, onServerRunning: onServerRunning)
    } catch {
        try? await resolution.startedCluster?.stop()
        throw error
    }
}

/// The second half of `buildApplication`, once the settings are known good and the database is reachable.
private func assemble(
    configuration: TollgateConfiguration, database resolution: DatabaseResolution, upstreamTLS: TLSConfiguration, rules: RulesConfiguration,
    policyDocument: PolicyDocument?, spool: UsageSpool, adminToken: Secret, logger: Logger, registry: PrometheusCollectorRegistry?,
    drain: DrainState, onServerRunning: @escaping @Sendable (Int) async -> Void
) async throws -> (application: some ApplicationProtocol, runtime: TollgateRuntime) {
    let location = resolution.location
    logger.info("Starting Tollgate", metadata: configuration.logMetadata.merging(["config.database": "\(location)"]) { $1 })
    // The vocabularies load beside the migrations; the gateway is built once they are in (below).
    let vocabularies = TokenizerWarmUp.start()
    // The pool the running server uses (it serves queries once the application's services run).
    let database = PostgresDatabase(location: location, maximumConnections: configuration.databaseConnections, logger: logger)
    // The minute limits are shared by every instance through leases of their allowance in PostgreSQL.
    let leases = AllowanceLeases(repository: database.allowanceLeases, logger: logger)
    let limiter = TokenLimiter(leases: leases)
    let initialCatalog = try await PostgresDatabase.withDatabase(location, logger: logger) { database in
        try await database.migrator().migrate()
        if let policyDocument, let file = configuration.policyFile {
            try await PolicyApplier(repositories: database.repositories).apply(policyDocument, logger: logger)
            logger.info("Configuration applied", metadata: ["config.file": "\(file)"])
        }
        let snapshot = try await database.catalog.snapshot(logger: logger)
        // Period quotas count what other instances served from the first request on, not from the first refresh.
        try await limiter.refresh(catalog: snapshot, from: LimitSources(quotaUsage: database.quotaUsage), logger: logger)
        return snapshot
    }

    let repositories = database.repositories
    let catalogStore = database.catalog
    let catalog = GatewayCatalog(store: catalogStore, logger: logger)
    catalog.replace(with: initialCatalog)
    let writer = UsageWriter(
        spool: spool, store: UsageStore(client: database.client), logger: logger, flushInterval: configuration.flushInterval,
        batchSize: configuration.batchSize)
    let upstream = UpstreamClients(tlsConfiguration: upstreamTLS)
    // Webhooks and management APIs: one client, redirects never followed (a redirect must not carry a credential elsewhere).
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
        redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(30))))
    let suspender = rules.suspender(subscriptions: database.subscriptionStates, http: http)
    let evaluator = BudgetEvaluator(
        budgets: database.budgets, subscriptions: database.subscriptionStates, leadership: database.leaderElection, suspender: suspender,
        configuration: .init(sweepInterval: rules.sweepInterval), logger: logger)
    let dispatcher = WebhookDispatcher(
        webhooks: database.webhooks, notifications: database.notifications, http: http, configuration: .init(targets: rules.webhookTargets),
        logger: logger)

    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: LogRequestsMiddleware(.debug))
    addHealthRoutes(to: router, catalog: catalog, writer: writer, leases: leases, drain: drain, registry: registry)
    let gateway = GatewayRoutes(
        catalog: catalog, writer: writer, upstream: upstream, limiter: limiter, metrics: GatewayMetrics(),
        configuration: GatewayConfiguration(
            maximumRequestBytes: configuration.maximumRequestBytes, credentials: configuration.credentials,
            failoverAttempts: configuration.failoverAttempts, failoverDeadline: configuration.failoverDeadline),
        health: BackendHealth(logger: logger, now: configuration.now), logger: logger)
    gateway.register(on: router)
    AdminAPI(
        token: adminToken, repositories: repositories, suspender: suspender, refreshCatalog: { await catalog.refresh() },
        backendHealth: gateway.health, now: configuration.now
    ).register(on: router)

    var app = Application(
        router: router,
        // The proxy routes are answered on the event loop, ahead of the router (GatewayChannelHandler).
        server: gateway.httpServer(),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "tollgate"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
        logger: logger)
    // Order is dependency order; the HTTP server starts after them all. Graceful shutdown runs in reverse: the server
    // drains, the writer loads what is spooled, clients close, and the embedded PostgreSQL stops last.
    if let cluster = resolution.startedCluster { app.addServices(EmbeddedPostgresService(cluster: cluster, logger: logger)) }
    // The rules engine's services come after the pool and the writer, so they stop first.
    app.addServices(
        database, upstream, HTTPClientService(client: http), writer,
        UsagePartitionMaintainer(ledger: database.usageLedger, retentionMonths: configuration.usageRetentionMonths, logger: logger),
        CatalogRefresher(catalog: catalog, notifications: database.notifications, interval: configuration.catalogRefreshInterval, logger: logger),
        LimitRefresher(limiter: limiter, catalog: catalog, sources: LimitSources(quotaUsage: database.quotaUsage), logger: logger),
        AllowanceLeaseKeeper(leases: leases),
        evaluator, dispatcher)
    await vocabularies.value
    return (app, TollgateRuntime(database: database, catalog: catalog, writer: writer, adminToken: adminToken))
}

func addHealthRoutes(
    to router: Router<BasicRequestContext>, catalog: GatewayCatalog, writer: UsageWriter, leases: AllowanceLeases?, drain: DrainState,
    registry: PrometheusCollectorRegistry?
) {
    // Liveness: the process answers.
    router.get("healthz") { _, _ in HealthBody(status: "ok", catalog: nil, usageLoading: nil, sharedLimits: nil) }
    // Readiness: the catalog is loaded, so keys can be checked. A database outage does not make the gateway unready:
    // it keeps serving known keys and spools usage. The body says how usage loading is doing. After SIGTERM it is 503
    // `draining`, so balancers stop sending while in-flight requests finish. `shared_limits` says whether the minute
    // limits can lease from PostgreSQL, or run on what this instance holds (then each product's `failure_mode`).
    router.get("readyz") { _, _ -> Response in
        let ready = catalog.isLoaded && !drain.isDraining
        let body = HealthBody(status: drain.isDraining ? "draining" : catalog.isLoaded ? "ready" : "starting",
                              catalog: catalog.isLoaded ? "loaded" : "loading",
                              usageLoading: writer.isLoading ? "ok" : "failing (usage is spooled on disk)",
                              sharedLimits: leases.map { $0.degraded ? "degraded (running on what this instance holds)" : "ok" })
        var response = try JSONEncoder().encodeResponse(body)
        response.status = ready ? .ok : .serviceUnavailable
        return response
    }
    if let registry {
        router.get("metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }
}

struct HealthBody: ResponseEncodable {
    var status: String
    var catalog: String?
    var usageLoading: String?
    var sharedLimits: String?
    enum CodingKeys: String, CodingKey {
        case status, catalog
        case usageLoading = "usage_loading"
        case sharedLimits = "shared_limits"
    }
}

extension JSONEncoder {
    func encodeResponse(_ value: some Encodable) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encode(value))))
    }
}

/// The admin API's bearer token when none is configured: generated once into `<data-dir>/admin.token` (mode 600).
enum AdminToken {
    static func readOrCreate(in directory: URL) throws -> Secret {
        let file = directory.appendingPathComponent("admin.token")
        if let existing = try? String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), existing.count >= 16 {
            return Secret(existing)
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let token = "tga_" + KeyStore.generateKey().dropFirst(4)
        guard FileManager.default.createFile(atPath: file.path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigurationError(variable: "TOLLGATE_ADMIN_TOKEN", message: "is unset and \(file.path) cannot be written")
        }
        return Secret(token)
    }
}

/// Builds the application and runs it until SIGTERM or SIGINT, then shuts down gracefully (see `buildApplication`).
/// `onListening` receives the bound port once the server accepts connections.
public func runServer(
    configuration: TollgateConfiguration, logger: Logger, registry: PrometheusCollectorRegistry?,
    onListening: @escaping @Sendable (Int) async -> Void
) async throws {
    let drain = DrainState()
    let (app, _) = try await buildApplication(
        configuration: configuration, logger: logger, registry: registry, drain: drain, onServerRunning: onListening)
    // The gate comes after the application, so a graceful shutdown reaches it first (see ShutdownDrainGate).
    var group = ServiceGroupConfiguration(
        services: [app, ShutdownDrainGate(state: drain, delay: configuration.shutdownDelay, logger: logger)],
        gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    // The hard deadline: past it, what is still draining is cancelled. Unloaded usage stays in the spool for the next start.
    group.maximumGracefulShutdownDuration = configuration.shutdownDelay + configuration.drainTimeout
    try await ServiceGroup(configuration: group).run()
}

/// Shuts an HTTP client down after the services that use it have stopped.
struct HTTPClientService: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try? await client.shutdown()
    }
}
