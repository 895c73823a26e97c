import Foundation
import Testing
import TollgateCore
import TollgateStore

struct DatabaseLocationTests {
    @Test func parsesEveryPart() throws {
        let location = try DatabaseLocation(url: "postgres://alice:s3cr%40t@db.example.com:6543/billing?sslmode=require")
        #expect(location.host == "db.example.com")
        #expect(location.port == 6543)
        #expect(location.username == "alice")
        #expect(location.password?.value == "s3cr@t")
        #expect(location.database == "billing")
        #expect(location.sslMode == .require)
    }

    @Test func defaultsPortUserAndSSLMode() throws {
        let location = try DatabaseLocation(url: "postgresql://db.internal/tollgate")
        #expect(
            location == DatabaseLocation(host: "db.internal", port: 5432, username: "postgres", password: nil, database: "tollgate", sslMode: .prefer)
        )
    }

    @Test func thePasswordNeverPrints() throws {
        let location = try DatabaseLocation(url: "postgres://alice:hunter2@db:5432/billing")
        #expect(location.description == "postgres://alice@db:5432/billing")
        #expect("\(location)" == "postgres://alice@db:5432/billing")
        #expect(!String(reflecting: location).contains("hunter2"))
        var dumped = ""
        dump(location, to: &dumped)
        #expect(!dumped.contains("hunter2"))
        #expect(!"\(location.secretURL)".contains("hunter2"))
    }

    @Test(arguments: [
        ("disable", DatabaseLocation.SSLMode.disable), ("allow", .prefer), ("prefer", .prefer), ("require", .require),
        ("verify-ca", .require), ("verify-full", .require),
    ])
    func sslModes(value: String, expected: DatabaseLocation.SSLMode) throws {
        #expect(try DatabaseLocation(url: "postgres://u@h/db?sslmode=\(value)").sslMode == expected)
    }

    @Test(arguments: [
        ("mysql://u:p@h/db", "DATABASE_URL must look like postgres://USER:PASSWORD@HOST:5432/DATABASE"),
        ("not a url at all", "DATABASE_URL must look like postgres://USER:PASSWORD@HOST:5432/DATABASE"),
        ("postgres:///db", "DATABASE_URL has no host"),
        ("postgres://u:p@h", "DATABASE_URL names no database (the path after the host)"),
        ("postgres://u:p@h:5432/", "DATABASE_URL names no database (the path after the host)"),
        ("postgres://u:hunter2@h/db?sslmode=sometimes", "DATABASE_URL sslmode must be disable, prefer or require"),
    ])
    func errorsSayWhatIsWrongWithoutThePassword(url: String, message: String) {
        let error = #expect(throws: DatabaseURLError.self) { try DatabaseLocation(url: url) }
        #expect(error?.description == message)
    }

    @Test(arguments: ["p@ss:w/rd?#%", "plain", "ünïcode"])
    func secretURLParsesBackToTheSameLocation(password: String) throws {
        let location = DatabaseLocation(
            host: "127.0.0.1", port: 55432, username: "tollgate", password: Secret(password), database: "tollgate", sslMode: .disable)
        let parsed = try DatabaseLocation(url: location.secretURL.value)
        #expect(parsed == location)
    }

    @Test func withDatabaseChangesOnlyTheDatabase() throws {
        let location = try DatabaseLocation(url: "postgres://u:p@h:1234/one?sslmode=disable")
        #expect(
            location.with(database: "two")
                == DatabaseLocation(host: "h", port: 1234, username: "u", password: Secret("p"), database: "two", sslMode: .disable))
    }
}
