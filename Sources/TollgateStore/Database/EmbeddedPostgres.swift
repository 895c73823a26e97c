import Foundation
import Logging
import NIOPosix
import TollgateCore

#if canImport(Glibc)
import Glibc
#endif

/// The PostgreSQL cluster `tollgate serve` runs for itself when no `DATABASE_URL` is given: created on first use under
/// `<data-dir>/pgdata`, listening on 127.0.0.1 only, with a generated password kept in `<data-dir>/postgres.password`.
/// PostgreSQL refuses to run as root, so as root the cluster belongs to, and runs as, the `postgres` user.
public struct EmbeddedPostgres: Sendable {
    public let baseDirectory: URL
    public let logger: Logger
    /// The OS user that owns and runs the cluster when Tollgate itself runs as root.
    public var systemUser: String = "postgres"
    /// Extra `postgres -c` settings. Tests turn durability off here; the embedded default never does.
    public var serverSettings: [String] = []
    /// `initdb --no-sync` when false: for throwaway test clusters only.
    public var syncOnInit = true
    public static let databaseName = "tollgate"
    public static let username = "tollgate"

    public init(baseDirectory: URL, logger: Logger) {
        self.baseDirectory = baseDirectory.standardizedFileURL
        self.logger = logger
    }

    public var dataDirectory: URL { baseDirectory.appendingPathComponent("pgdata") }
    var passwordFile: URL { baseDirectory.appendingPathComponent("postgres.password") }
    /// Inside the data directory, which the cluster owner can write even when we run as root.
    public var logFile: URL { dataDirectory.appendingPathComponent("server.log") }

    /// Whether this cluster's postmaster is up, and on which port.
    public func runningPort() -> Int? {
        guard let pid = try? String(contentsOf: dataDirectory.appendingPathComponent("postmaster.pid"), encoding: .utf8) else { return nil }
        let lines = pid.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3, let process = Int32(lines[0]), kill(process, 0) == 0 || errno == EPERM, let port = Int(lines[3]) else { return nil }
        return port
    }

    /// Creates the cluster if needed, starts it unless it is already running, and makes sure the `tollgate` database exists.
    /// - Returns: where to connect, and whether this call started the server (and so should stop it).
    ///
    /// `initdb` and `pg_ctl` are waited for on NIO's thread pool: `tollgate serve` runs tasks on the event loops.
    public func start() async throws -> (location: DatabaseLocation, startedHere: Bool) {
        try await NIOThreadPool.singleton.runIfActive { try self.startWaiting() }
    }

    /// Stops the cluster, waiting for `pg_ctl` on NIO's thread pool.
    public func stop() async throws {
        try await NIOThreadPool.singleton.runIfActive { try self.stopWaiting() }
    }

    private func startWaiting() throws -> (location: DatabaseLocation, startedHere: Bool) {
        let bin = try Self.binDirectory()
        try FileManager.default.createDirectory(at: baseDirectory, withIntermediateDirectories: true)
        let password = try readOrCreatePassword()
        if !FileManager.default.fileExists(atPath: dataDirectory.appendingPathComponent("PG_VERSION").path) {
            try initialise(bin: bin, password: password)
        }
        var startedHere = false
        let port: Int
        if let running = runningPort() {
            port = running
            logger.info("Using the embedded PostgreSQL already running", metadata: ["postgres.port": "\(port)"])
        } else {
            port = try Self.freePort()
            logger.info("Starting embedded PostgreSQL", metadata: ["postgres.data_dir": "\(dataDirectory.path)", "postgres.port": "\(port)"])
            try startServer(bin: bin, port: port)
            startedHere = true
        }
        let location = DatabaseLocation(
            host: "127.0.0.1", port: port, username: Self.username, password: Secret(password), database: Self.databaseName, sslMode: .disable)
        return (location, startedHere)
    }

    /// Stops the cluster (fast shutdown: open transactions roll back, committed data is safe), blocking the calling
    /// thread until `pg_ctl` returns.
    public func stopWaiting() throws {
        guard runningPort() != nil, let bin = try? Self.binDirectory() else { return }
        logger.info("Stopping embedded PostgreSQL")
        try runAsClusterOwner(bin.appendingPathComponent("pg_ctl").path, ["-D", dataDirectory.path, "-w", "-m", "fast", "stop"], what: "stop PostgreSQL")
    }

    private func initialise(bin: URL, password: String) throws {
        logger.info("Creating the embedded PostgreSQL cluster", metadata: ["postgres.data_dir": "\(dataDirectory.path)"])
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // initdb reads the superuser's password from a file; give it one only the cluster owner can read, then remove it.
        let pwfile = baseDirectory.appendingPathComponent(".initdb-password")
        if getuid() == 0 {
            // The cluster owner must be able to reach the data directory; /root and friends are closed to it.
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: baseDirectory.path)
        }
        _ = FileManager.default.createFile(atPath: pwfile.path, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600])
        defer { try? FileManager.default.removeItem(at: pwfile) }
        if getuid() == 0 {
            try chownToClusterOwner(dataDirectory)
            try chownToClusterOwner(pwfile)
        }
        try runAsClusterOwner(bin.appendingPathComponent("initdb").path, [
            "-D", dataDirectory.path, "-U", Self.username, "--pwfile", pwfile.path,
            "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
        ] + (syncOnInit ? [] : ["--no-sync"]), what: "create the PostgreSQL cluster")
        // The server's first start creates the application database.
        let port = try Self.freePort()
        try startServer(bin: bin, port: port)
        defer { try? runAsClusterOwner(bin.appendingPathComponent("pg_ctl").path, ["-D", dataDirectory.path, "-w", "-m", "fast", "stop"], what: "stop PostgreSQL") }
        try runAsClusterOwner(
            bin.appendingPathComponent("psql").path,
            ["-h", "127.0.0.1", "-p", "\(port)", "-U", Self.username, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", "CREATE DATABASE \(Self.databaseName)"],
            environment: ["PGPASSWORD": password], what: "create the tollgate database")
    }

    private func startServer(bin: URL, port: Int) throws {
        let options = (["-p \(port)", "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=''"] + serverSettings.map { "-c \($0)" })
            .joined(separator: " ")
        try runAsClusterOwner(bin.appendingPathComponent("pg_ctl").path, [
            "-D", dataDirectory.path, "-w", "-t", "60", "-l", logFile.path, "start", "-o", options,
        ], what: "start PostgreSQL (see \(logFile.path))")
    }

    private func readOrCreatePassword() throws -> String {
        if let existing = try? String(contentsOf: passwordFile, encoding: .utf8), !existing.isEmpty {
            return existing.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
        let password = String((0..<32).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
        guard FileManager.default.createFile(atPath: passwordFile.path, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw EmbeddedPostgresError.cannotWrite(passwordFile.path)
        }
        return password
    }

    private func chownToClusterOwner(_ url: URL) throws {
        guard let user = getpwnam(systemUser) else { throw EmbeddedPostgresError.noSystemUser(systemUser) }
        guard chown(url.path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else { throw EmbeddedPostgresError.cannotWrite(url.path) }
    }

    /// Runs a PostgreSQL program, as the `postgres` OS user when we are root.
    private func runAsClusterOwner(_ program: String, _ arguments: [String], environment: [String: String] = [:], what: String) throws {
        var executable = program
        var args = arguments
        if getuid() == 0 {
            executable = "/usr/sbin/runuser"
            args = ["-u", systemUser, "--", program] + arguments
            guard getpwnam(systemUser) != nil else { throw EmbeddedPostgresError.noSystemUser(systemUser) }
        }
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        env["LC_ALL"] = "C.UTF-8"
        let result = try ChildProcess.run(executable, args, environment: env)
        guard result.status == 0 else {
            throw EmbeddedPostgresError.commandFailed(what: what, output: result.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Where the PostgreSQL server programs are: `TOLLGATE_PG_BINDIR`, then `pg_config --bindir`, then Debian's layout.
    public static func binDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        var candidates: [String] = []
        if let explicit = environment["TOLLGATE_PG_BINDIR"] { candidates.append(explicit) }
        if let fromConfig = try? capture("pg_config", ["--bindir"]) { candidates.append(fromConfig) }
        if let versions = try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            candidates += versions.sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }
        }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate + "/initdb") {
            return URL(fileURLWithPath: candidate)
        }
        throw EmbeddedPostgresError.binariesMissing
    }

    private static func capture(_ program: String, _ arguments: [String]) throws -> String {
        let result = try ChildProcess.run("/usr/bin/env", [program] + arguments, environment: ProcessInfo.processInfo.environment)
        guard result.status == 0 else { throw EmbeddedPostgresError.binariesMissing }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Asks the kernel for a free TCP port on loopback.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EmbeddedPostgresError.noFreePort }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw EmbeddedPostgresError.noFreePort }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw EmbeddedPostgresError.noFreePort }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

public enum EmbeddedPostgresError: Error, CustomStringConvertible, Sendable {
    case binariesMissing
    case noSystemUser(String)
    case cannotWrite(String)
    case commandFailed(what: String, output: String)
    case noFreePort

    public var description: String {
        switch self {
        case .binariesMissing:
            "PostgreSQL server programs (initdb, pg_ctl, postgres) were not found. Install them (Debian/Ubuntu: `apt-get install postgresql`), set TOLLGATE_PG_BINDIR to their directory, or set DATABASE_URL to use an existing server."
        case .noSystemUser(let user):
            "running as root, Tollgate runs its embedded PostgreSQL as the '\(user)' OS user, which does not exist. Create it (`useradd --system \(user)`) or run Tollgate as an unprivileged user."
        case .cannotWrite(let path): "cannot write \(path)"
        case .commandFailed(let what, let output):
            "could not \(what): \(output)\(output.contains("Permission denied") ? "\nHint: as root the cluster runs as the 'postgres' user, which must be able to reach the data directory; choose a --data-dir it can reach (for example /var/lib/tollgate)." : "")"
        case .noFreePort: "no free TCP port on 127.0.0.1 for the embedded PostgreSQL"
        }
    }
}
