import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing
import TollgateCore
import TollgateGateway
import TollgateServer
import TollgateStore
import TollgateTestSupport

/// A deployment name served by a pool of two backends on the fake upstream: `primary` (priority 1) serves it as the
/// upstream model `first`, `overflow` (priority 2) as `second`. What the fake answers depends on that model, so each
/// test scripts the primary's failure by naming it.
@Suite(.freshDatabasePerTest) struct FailoverTests {
    static let body = ByteBuffer.json(#"{"model":"pooled","messages":[{"role":"user","content":"Say hello there!"}]}"#)

    static func pool(port: Int, first: String, second: String = "gpt-4o-mini", breaker: CircuitBreakerSpec = CircuitBreakerSpec()) -> PolicyDocument {
        var document = GatewayHarness.document(upstreamPort: port)
        document.backends.append(contentsOf: [
            BackendSpec(
                name: "primary", kind: .openai, baseURL: "http://127.0.0.1:\(port)/v1", credentialEnv: "UPSTREAM_KEY",
                deployments: [DeploymentSpec(name: "pooled", model: first, priority: 1)], connectTimeoutSeconds: 30, readTimeoutSeconds: 30,
                circuitBreaker: breaker),
            BackendSpec(
                name: "overflow", kind: .openai, baseURL: "http://127.0.0.1:\(port)/v1", credentialEnv: "UPSTREAM_KEY",
                deployments: [DeploymentSpec(name: "pooled", model: second, priority: 2)], connectTimeoutSeconds: 30, readTimeoutSeconds: 30),
        ])
        return document
    }

    static let admin: HTTPFields = [.authorization: "Bearer \(GatewayHarness.adminToken)"]

    /// The harness's configuration with the backends' health on `clock`: waits and open times pass when the test
    /// says, however slow the machine.
    static func configuration(clock: LimitTests.Clock) async throws -> TollgateConfiguration {
        var configuration = try await GatewayHarness.configuration()
        configuration.now = { clock.now }
        return configuration
    }

    /// The backends as `GET /admin/v1/backends` shows them, by name.
    static func backends(_ client: any TestClientProtocol) async throws -> [String: [String: Any]] {
        try await client.execute(uri: "/admin/v1/backends", method: .get, headers: admin) { response in
            #expect(response.status == .ok)
            let list = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [[String: Any]] ?? []
            return Dictionary(uniqueKeysWithValues: list.map { ($0["name"] as? String ?? "", $0) })
        }
    }

    static func send(_ client: any TestClientProtocol, key: String, body: ByteBuffer = body) async throws -> (HTTPResponse.Status, HTTPFields, String) {
        try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(key), body: body) { response in
            (response.status, response.headers, String(buffer: response.body))
        }
    }

    @Test func a429FailsOverAndTheThrottledMemberIsSkippedForExactlyItsWait() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(Self.pool(port: port, first: "rate-limited-ms"))
            let clock = LimitTests.Clock(Date())
            try await GatewayHarness.withLiveGateway(configuration: try await Self.configuration(clock: clock)) { client, runtime in
                // The primary answers 429 (retry-after-ms: 1500): the client sees one clean reply, from the overflow.
                let (status, _, text) = try await Self.send(client, key: keys["sub-a"]!)
                #expect(status == .ok && text.contains("Hello from the fake"))
                #expect(upstream.requests(for: "rate-limited-ms") == 1 && upstream.requests(for: "gpt-4o-mini") == 1)
                // Within its wait the primary is skipped.
                let cooling = try await Self.backends(client)["primary"]?["cooling"] as? [[String: Any]]
                #expect(cooling?.first?["deployment"] as? String == "pooled")
                #expect(try await Self.send(client, key: keys["sub-a"]!).0 == .ok)
                #expect(upstream.requests(for: "rate-limited-ms") == 1)
                // Up to its end the primary is skipped; after it, it is tried again.
                clock.advance(seconds: 1.49)
                #expect(try await Self.send(client, key: keys["sub-a"]!).0 == .ok)
                #expect(upstream.requests(for: "rate-limited-ms") == 1)
                clock.advance(seconds: 0.02)
                #expect(try await Self.send(client, key: keys["sub-a"]!).0 == .ok)
                #expect(upstream.requests(for: "rate-limited-ms") == 2)
                await runtime.writer.flush()
            }
            // The rows name the backend that served.
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.map(\.backend) == ["overflow", "overflow", "overflow", "overflow"])
            #expect(rows.map(\.deployment) == ["pooled", "pooled", "pooled", "pooled"] && rows.allSatisfy { $0.usageSource == "reported" })
        }
    }

    /// `Retry-After` (seconds) and the longer of `x-ratelimit-reset-*` set the wait as `retry-after-ms` does.
    @Test(arguments: [("rate-limited", 7.0), ("rate-limited-reset", 2.0)])
    func eachRetryHeaderSetsTheWait(_ model: String, seconds: Double) async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(Self.pool(port: port, first: model))
            let clock = LimitTests.Clock(Date(timeIntervalSince1970: 1_790_000_000))
            try await GatewayHarness.withLiveGateway(configuration: try await Self.configuration(clock: clock)) { client, _ in
                #expect(try await Self.send(client, key: keys["sub-a"]!).0 == .ok)
                let cooling = try await Self.backends(client)["primary"]?["cooling"] as? [[String: Any]]
                let text = try #require(cooling?.first?["until"] as? String)
                #expect(Date(iso8601: text) == clock.now.addingTimeInterval(seconds))
            }
        }
    }

    @Test(arguments: ["server-error", "dead"])
    func serverErrorsAndUnreachableBackendsFailOver(_ failure: String) async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            var document = Self.pool(port: port, first: "server-error")
            if failure == "dead" { document.backends[document.backends.count - 2].baseURL = "http://127.0.0.1:1/v1" }
            let keys = try await GatewayHarness.prepare(document)
            try await GatewayHarness.withLiveGateway(configuration: try await GatewayHarness.configuration()) { client, runtime in
                let (status, _, text) = try await Self.send(client, key: keys["sub-a"]!)
                #expect(status == .ok && text.contains("Hello from the fake"))
                await runtime.writer.flush()
            }
            #expect(try await GatewayHarness.usageRows().map(\.backend) == ["overflow"])
        }
    }

    /// When every member is out, the client gets 429 with the earliest return (both rate-limited: 1.5 s and 7 s), or
    /// 503 when no return time is known (both failing).
    @Test func everyMemberOutGives429AtTheEarliestReturnOr503() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            var document = Self.pool(port: port, first: "rate-limited", second: "rate-limited-ms")
            let clock = LimitTests.Clock(Date())
            // A second pool, "failing": two backends that both answer 500.
            document.backends[0].deployments.append(DeploymentSpec(name: "failing", model: "server-error"))
            document.backends.append(
                BackendSpec(
                    name: "broken", kind: .openai, baseURL: "http://127.0.0.1:\(port)/v1", credentialEnv: "UPSTREAM_KEY",
                    deployments: [DeploymentSpec(name: "failing", model: "server-error")]))
            let keys = try await GatewayHarness.prepare(document)
            try await GatewayHarness.withLiveGateway(configuration: try await Self.configuration(clock: clock)) { client, runtime in
                let (status, headers, text) = try await Self.send(client, key: keys["sub-a"]!)
                #expect(status == .tooManyRequests)
                #expect(headers[.retryAfter] == "2" && headers[HTTPField.Name("retry-after-ms")!] == "1500")
                let error = try JSONDecoder().decode(OpenAIErrorEnvelope.self, from: Data(text.utf8)).error
                #expect(error.code == "no_backend_available" && error.type == "rate_limit_error")
                #expect(upstream.requests(for: "rate-limited") == 1 && upstream.requests(for: "rate-limited-ms") == 1)

                let failing = ByteBuffer.json(#"{"model":"failing","messages":[{"role":"user","content":"hi"}]}"#)
                let (failedStatus, _, failedText) = try await Self.send(client, key: keys["sub-a"]!, body: failing)
                #expect(failedStatus == .serviceUnavailable)
                #expect(try JSONDecoder().decode(OpenAIErrorEnvelope.self, from: Data(failedText.utf8)).error.code == "no_backend_available")
                #expect(upstream.requests(for: "server-error") == 2)
                await runtime.writer.flush()
            }
            #expect(try await GatewayHarness.usageRows().map(\.httpStatus) == [429, 503])
        }
    }

    /// Once a stream's first byte went out there is no retry: the client gets the cut stream, the row is estimated.
    @Test func noRetryOnceAStreamHasStarted() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(Self.pool(port: port, first: "broken-stream"))
            try await GatewayHarness.withLiveGateway(configuration: try await GatewayHarness.configuration()) { client, runtime in
                let streamed = ByteBuffer.json(#"{"model":"pooled","stream":true,"messages":[{"role":"user","content":"Say hello there!"}]}"#)
                _ = try? await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: streamed)
                try await Task.sleep(for: .milliseconds(200))
                #expect(upstream.requests(for: "gpt-4o-mini") == 0)
                await runtime.writer.flush()
            }
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.map(\.backend) == ["primary"] && rows.map(\.usageSource) == ["estimated"])
        }
    }

    /// Failures in the window open the primary's breaker (it leaves the pool), a probe after `open_seconds` finds it
    /// well again and closes it; each state shows in `GET /admin/v1/backends`.
    @Test func theBreakerOpensThenAProbeClosesIt() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let breaker = CircuitBreakerSpec(failures: 2, windowSeconds: 30, openSeconds: 1)
            let keys = try await GatewayHarness.prepare(Self.pool(port: port, first: "flaky", breaker: breaker))
            let clock = LimitTests.Clock(Date())
            try await GatewayHarness.withLiveGateway(configuration: try await Self.configuration(clock: clock)) { client, runtime in
                for _ in 0..<2 { #expect(try await Self.send(client, key: keys["sub-a"]!).0 == .ok) }
                var primary = try await Self.backends(client)["primary"]?["circuit_breaker"] as? [String: Any]
                #expect(primary?["state"] as? String == "open")
                #expect((primary?["reason"] as? String)?.contains("HTTP 503") == true)
                #expect(primary?["open_until"] is String)
                // Open: the primary is not tried.
                #expect(try await Self.send(client, key: keys["sub-a"]!).0 == .ok)
                #expect(upstream.requests(for: "flaky") == 2)
                // After open_seconds, one request probes it; it answers, so the breaker closes and the primary serves.
                upstream.flakyFails.withLock { $0 = false }
                clock.advance(seconds: 1)
                #expect(try await Self.send(client, key: keys["sub-a"]!).0 == .ok)
                #expect(upstream.requests(for: "flaky") == 3)
                primary = try await Self.backends(client)["primary"]?["circuit_breaker"] as? [String: Any]
                #expect(primary?["state"] as? String == "closed" && primary?["reason"] as? String == "probe succeeded")
                await runtime.writer.flush()
            }
            #expect(try await GatewayHarness.usageRows().map(\.backend) == ["overflow", "overflow", "overflow", "primary"])
        }
    }

    @Test func theFailoverSettingsAreReadFromTheEnvironment() throws {
        let set = try TollgateConfiguration(environment: ["TOLLGATE_FAILOVER_ATTEMPTS": "5", "TOLLGATE_FAILOVER_DEADLINE_SECONDS": "20"])
        #expect(set.failoverAttempts == 5 && set.failoverDeadline == .seconds(20))
        let defaults = try TollgateConfiguration(environment: [:])
        #expect(defaults.failoverAttempts == 3 && defaults.failoverDeadline == .seconds(60))
        #expect(throws: ConfigurationError.self) { try TollgateConfiguration(environment: ["TOLLGATE_FAILOVER_ATTEMPTS": "0"]) }
        #expect(throws: ConfigurationError.self) { try TollgateConfiguration(environment: ["TOLLGATE_FAILOVER_DEADLINE_SECONDS": "soon"]) }
    }

    /// With one attempt allowed, the primary's 429 is the reply, passed on as it came.
    @Test func theAttemptsAreBounded() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(Self.pool(port: port, first: "rate-limited"))
            var configuration = try await GatewayHarness.configuration()
            configuration.failoverAttempts = 1
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, _ in
                let (status, headers, text) = try await Self.send(client, key: keys["sub-a"]!)
                #expect(status == .tooManyRequests && headers[.retryAfter] == "7" && text.contains("rate_limit_exceeded"))
                #expect(upstream.requests(for: "gpt-4o-mini") == 0)
            }
        }
    }
}
