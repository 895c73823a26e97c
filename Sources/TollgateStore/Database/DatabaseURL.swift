import Foundation
import NIOSSL
import PostgresNIO
import TollgateCore

/// Where the database is: parsed once from `DATABASE_URL` (`postgres://user:pass@host:5432/db?sslmode=require`).
public struct DatabaseLocation: Sendable, Hashable, CustomStringConvertible {
    public enum SSLMode: String, Sendable, Hashable { case disable, prefer, require }

    public var host: String
    public var port: Int
    public var username: String
    public var password: Secret?
    public var database: String
    public var sslMode: SSLMode

    public init(host: String, port: Int, username: String, password: Secret?, database: String, sslMode: SSLMode = .disable) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.sslMode = sslMode
    }

    /// Parses a `postgres://` or `postgresql://` URL.
    /// - Throws: `DatabaseURLError` naming what is wrong; the message never contains the password.
    public init(url text: String) throws(DatabaseURLError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw .invalid("DATABASE_URL must look like postgres://USER:PASSWORD@HOST:5432/DATABASE")
        }
        guard let host = components.host, !host.isEmpty else { throw .invalid("DATABASE_URL has no host") }
        let database = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard !database.isEmpty else { throw .invalid("DATABASE_URL names no database (the path after the host)") }
        var sslMode = SSLMode.prefer
        for item in components.queryItems ?? [] where item.name == "sslmode" {
            switch item.value ?? "" {
            case "disable": sslMode = .disable
            case "allow", "prefer": sslMode = .prefer
            case "require", "verify-ca", "verify-full": sslMode = .require
            default: throw .invalid("DATABASE_URL sslmode must be disable, prefer or require")
            }
        }
        self.init(
            host: host, port: components.port ?? 5432,
            username: components.percentEncodedUser?.removingPercentEncoding ?? "postgres",
            password: components.percentEncodedPassword?.removingPercentEncoding.map(Secret.init),
            database: database.removingPercentEncoding ?? database, sslMode: sslMode)
    }

    /// The same server, another database (test clones, the `postgres` maintenance database).
    public func with(database: String) -> DatabaseLocation {
        var copy = self
        copy.database = database
        return copy
    }

    /// `postgres://user@host:port/db`, without the password: safe to log.
    public var description: String { "postgres://\(username)@\(host):\(port)/\(database)" }

    /// The URL including the password, for handing to child processes. Never log it.
    public var secretURL: Secret {
        var components = URLComponents()
        components.scheme = "postgres"
        components.user = username
        components.password = password?.value
        components.host = host
        components.port = port
        components.path = "/\(database)"
        if sslMode != .prefer { components.queryItems = [URLQueryItem(name: "sslmode", value: sslMode.rawValue)] }
        return Secret(components.string ?? "")
    }

    /// For a dedicated connection (LISTEN, session advisory locks) outside the pool.
    public func connectionConfiguration() -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch sslMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(try! .init(configuration: .makeClientConfiguration()))
        case .require: tls = .require(try! .init(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password?.value, database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    public func clientConfiguration(maximumConnections: Int = 20) -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(.makeClientConfiguration())
        case .require: tls = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password?.value, database: database, tls: tls)
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }
}

public enum DatabaseURLError: Error, CustomStringConvertible, Sendable {
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let message): message
        }
    }
}
