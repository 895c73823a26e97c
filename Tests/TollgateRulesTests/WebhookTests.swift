import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import Testing
import TollgateCore
import TollgateRules
import TollgateStore
import TollgateTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A webhook receiver that records every request and answers from a script, then 204.
actor Receiver {
    struct Delivery: Sendable {
        var id: String
        var timestamp: String
        var signature: String
        var body: String
        var contentType: String?
    }
    var deliveries: [Delivery] = []
    var script: [Int] = []

    func answer(_ statuses: [Int]) { script = statuses }

    func record(_ delivery: Delivery) -> Int {
        deliveries.append(delivery)
        return script.isEmpty ? 204 : script.removeFirst()
    }

    nonisolated func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
            let status = await self.record(
                Delivery(
                    id: request.headers[HTTPField.Name("webhook-id")!] ?? "", timestamp: request.headers[HTTPField.Name("webhook-timestamp")!] ?? "",
                    signature: request.headers[HTTPField.Name("webhook-signature")!] ?? "", body: body, contentType: request.headers[.contentType]))
            return Response(status: .init(code: status))
        }
        return router
    }
}

/// The Standard Webhooks signature computed independently of `StandardWebhooks`, straight from the spec's recipe.
private func independentSignature(secret: String, id: String, timestamp: String, body: String) -> String {
    let key = SymmetricKey(data: Data(base64Encoded: String(secret.dropFirst("whsec_".count)))!)
    let mac = HMAC<SHA256>.authenticationCode(for: Data("\(id).\(timestamp).\(body)".utf8), using: key)
    return "v1," + Data(mac).base64EncodedString()
}

private let testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
private let fastRetries = RetrySchedule(initial: .milliseconds(50), factor: 2, maximum: .milliseconds(400), giveUpAfter: .seconds(60))

private func enqueue(_ type: WebhookEventType = .suspended, client: PostgresClient) async throws -> (WebhookMessage, Int) {
    let payload = SubscriptionStatePayload(
        subscription: "team-a", budget: "team-a-monthly", state: "suspended", reason: "over budget", actor: "rules-engine", adapter: "tollgate",
        resetsAt: "2026-12-01T00:00:00.000Z")
    let message = try WebhookMessage(type: type, occurredAt: utc("2026-11-25T10:00:00Z"), data: payload)
    let queued = try await PostgresWebhookRepository(client: client).enqueue(message, logger: Fixtures.logger)
    return (message, queued)
}

private func dispatcher(
    _ client: PostgresClient, http: HTTPClient, targets: WebhookTargetPolicy = .init(allowLoopback: true), retry: RetrySchedule = fastRetries
) async throws -> WebhookDispatcher {
    Fixtures.dispatcher(
        client, location: try await TestDatabase.location(), http: http,
        configuration: .init(targets: targets, retry: retry, requestTimeout: .seconds(5), pollInterval: .milliseconds(100)))
}

@Suite struct WebhookSignatureTests {
    @Test func knownAnswerFromTheStandardWebhooksTestSuite() throws {
        // Vector from the specification's reference libraries (test_sign_function): key, id, timestamp, payload, signature.
        let signature = StandardWebhooks.signature(
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Array(#"{"test": 2432232314}"#.utf8),
            secret: try WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func rotationSignsWithEverySecret() throws {
        let old = try WebhookSecret(testSecret)
        let new = WebhookSecret.generate()
        let body = Array(#"{"type":"budget.exceeded"}"#.utf8)
        let headers = StandardWebhooks.headers(id: "msg_1", timestamp: 1_764_064_800, body: body, secrets: [old, new])
        #expect(headers.map(\.name) == ["webhook-id", "webhook-timestamp", "webhook-signature"])
        let signatures = headers[2].value.split(separator: " ").map(String.init)
        #expect(signatures.count == 2)
        #expect(signatures[0] == independentSignature(secret: testSecret, id: "msg_1", timestamp: "1764064800", body: #"{"type":"budget.exceeded"}"#))
        let now = Date(timeIntervalSince1970: 1_764_064_800)
        #expect(StandardWebhooks.verify(id: "msg_1", timestamp: 1_764_064_800, signatureHeader: headers[2].value, body: body, secret: new, now: now))
        #expect(
            !StandardWebhooks.verify(
                id: "msg_1", timestamp: 1_764_064_800, signatureHeader: headers[2].value, body: body + [0x20], secret: new, now: now))
        #expect(
            !StandardWebhooks.verify(
                id: "msg_1", timestamp: 1_764_064_800, signatureHeader: headers[2].value, body: body, secret: old, now: now.addingTimeInterval(301)))
    }

    @Test(arguments: ["whsec_", "secret", "whsec_!!!", "whsec_c2hvcnQ="])
    func malformedSecretsAreRejected(text: String) {
        #expect(throws: WebhookSecretError.malformed) { try WebhookSecret(text) }
    }

    @Test func secretsNeverPrint() throws {
        let secret = try WebhookSecret(testSecret)
        #expect("\(secret)" == "whsec_<redacted>")
        #expect(String(reflecting: secret).contains("MfKQ") == false)
    }

    @Test func standardRetryScheduleSpansMoreThanADay() throws {
        var elapsed = Duration.zero
        var delays: [Duration] = []
        var attempts = 1
        while let delay = RetrySchedule.standard.delay(afterFailedAttempts: attempts, elapsed: elapsed) {
            delays.append(delay)
            elapsed += delay
            attempts += 1
        }
        #expect(Array(delays.prefix(4)) == [.seconds(5), .seconds(20), .seconds(80), .seconds(320)])
        #expect(elapsed >= .seconds(24 * 3600))  // the last retry is more than a day after the first attempt
        #expect(elapsed <= .seconds(26 * 3600))
        #expect(attempts == 11)  // the first attempt and ten retries
    }
}

@Suite struct SSRFGuardTests {
    private static func bytes(_ text: String) -> [UInt8] {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        precondition(inet_pton(AF_INET6, text, &v6) == 1, "not an address: \(text)")
        return withUnsafeBytes(of: &v6) { Array($0) }
    }

    @Test(arguments: [
        ("8.8.8.8", AddressCategory.global), ("127.0.0.1", .loopback), ("127.255.0.9", .loopback), ("10.1.2.3", .privateNetwork),
        ("172.16.0.1", .privateNetwork), ("172.31.255.255", .privateNetwork), ("172.32.0.1", .global), ("192.168.1.1", .privateNetwork),
        ("100.64.0.1", .privateNetwork), ("169.254.169.254", .linkLocal), ("0.0.0.0", .unspecified), ("224.0.0.1", .multicast),
        ("255.255.255.255", .reserved), ("::1", .loopback), ("::", .unspecified), ("fe80::1", .linkLocal), ("fd12:3456::1", .privateNetwork),
        ("ff02::1", .multicast), ("::ffff:127.0.0.1", .loopback), ("::ffff:169.254.169.254", .linkLocal), ("::ffff:8.8.8.8", .global),
        ("64:ff9b::a00:1", .privateNetwork), ("2001:4860:4860::8888", .global),
    ])
    func classifiesAddresses(address: String, expected: AddressCategory) {
        #expect(AddressCategory.of(Self.bytes(address)) == expected)
    }

    private static func refusal(_ url: String, _ policy: WebhookTargetPolicy = .publicOnly) async -> String {
        do {
            try await policy.check(url)
            return "allowed"
        } catch {
            switch error {
            case .notAllowed(_, let category): return category.rawValue
            case .invalidURL: return "invalid"
            case .unresolvable: return "unresolvable"
            }
        }
    }

    @Test func loopbackAndMetadataAreRefusedByDefault() async throws {
        #expect(await Self.refusal("http://127.0.0.1:8080/hook") == "loopback")
        #expect(await Self.refusal("https://localhost/hook") == "loopback")
        #expect(await Self.refusal("http://[::ffff:7f00:1]/hook") == "loopback")
        #expect(await Self.refusal("http://[::1]:9/hook") == "loopback")
        #expect(await Self.refusal("http://10.0.0.7/hook") == "private")
        #expect(await Self.refusal("http://0.0.0.0:80/") == "unspecified")
        #expect(await Self.refusal("http://169.254.169.254/latest/meta-data", .init(allowLoopback: true, allowPrivateNetworks: true)) == "link_local")
        #expect(await Self.refusal("file:///etc/passwd") == "invalid")
        #expect(await Self.refusal("http://127.0.0.1:8080/hook", .init(allowLoopback: true)) == "allowed")
        #expect(await Self.refusal("http://10.0.0.7/hook", .init(allowPrivateNetworks: true)) == "allowed")
    }
}

@Suite(.freshDatabase) struct WebhookDeliveryTests {
    @Test func deliversASignedMessageThatVerifies() async throws {
        let receiver = Receiver()
        let http = Fixtures.httpClient()
        try await TestDatabase.withClient { client in
            try await Fixtures.withLiveServer(receiver.router()) { port async throws in
                let endpoint = try await PostgresWebhookRepository(client: client).createEndpoint(
                    url: "http://127.0.0.1:\(port)/hook", secret: try WebhookSecret(testSecret), logger: Fixtures.logger)
                let (message, queued) = try await enqueue(client: client)
                #expect(queued == 1)
                #expect(try await dispatcher(client, http: http).deliverDue() == 1)
                let deliveries = await receiver.deliveries
                try #require(deliveries.count == 1)
                let delivery = deliveries[0]
                #expect(delivery.id == message.id)
                #expect(delivery.body == message.body)
                #expect(delivery.contentType == "application/json")
                #expect(
                    delivery.signature
                        == independentSignature(secret: testSecret, id: delivery.id, timestamp: delivery.timestamp, body: delivery.body))
                #expect(abs((Int(delivery.timestamp) ?? 0) - Int(Date().timeIntervalSince1970)) < 30)
                let log = try await PostgresWebhookRepository(client: client).deliveries(endpoint: endpoint, logger: Fixtures.logger)
                #expect(log.map(\.outcome) == ["delivered"])
                #expect(log.first?.httpStatus == 204)
                #expect(try await dispatcher(client, http: http).deliverDue() == 0)  // nothing left
            }
        }
        try await http.shutdown()
        #expect(await receiver.deliveries.count == 1)
    }

    @Test func payloadShape() throws {
        let payload = SubscriptionStatePayload(
            subscription: "team-a", budget: "b", state: "suspended", reason: "r", actor: "rules-engine", adapter: "tollgate", resetsAt: nil)
        let message = try WebhookMessage(type: .suspended, occurredAt: utc("2026-11-25T10:00:00Z"), data: payload, id: "msg_x")
        #expect(
            message.body
                == #"{"data":{"actor":"rules-engine","adapter":"tollgate","budget":"b","reason":"r","state":"suspended","subscription":"team-a"},"timestamp":"2026-11-25T10:00:00.000Z","type":"subscription.suspended"}"#
        )
    }
}

@Suite(.freshDatabase) struct WebhookOutageTests {
    @Test func redeliversAfterAReceiverOutageWithTheSameID() async throws {
        let receiver = Receiver()
        await receiver.answer([503, 500, 502])
        let http = Fixtures.httpClient()
        try await TestDatabase.withClient { client in
            try await Fixtures.withLiveServer(receiver.router()) { port async throws in
                let endpoint = try await PostgresWebhookRepository(client: client).createEndpoint(
                    url: "http://127.0.0.1:\(port)/hook", secret: try WebhookSecret(testSecret), logger: Fixtures.logger)
                let service = try await dispatcher(client, http: http)
                try await Fixtures.running({ try await service.run() }) { () async throws in
                    let (message, _) = try await enqueue(client: client)
                    #expect(try await Fixtures.eventually { await receiver.deliveries.count == 4 })
                    #expect(await receiver.deliveries.map(\.id) == Array(repeating: message.id, count: 4))
                    #expect(
                        try await Fixtures.eventually {
                            try await PostgresWebhookRepository(client: client).deliveries(endpoint: endpoint, logger: Fixtures.logger).count == 4
                        })
                }
                let log = try await PostgresWebhookRepository(client: client).deliveries(endpoint: endpoint, logger: Fixtures.logger)
                #expect(log.map(\.outcome) == ["delivered", "retrying", "retrying", "retrying"])  // newest first
                #expect(log.map(\.attempt) == [4, 3, 2, 1])
                #expect(log.map(\.httpStatus) == [204, 502, 500, 503])
            }
        }
        try await http.shutdown()
    }

}

@Suite(.freshDatabase) struct WebhookGoneTests {
    @Test func anEndpointAnswering410IsDisabled() async throws {
        let receiver = Receiver()
        await receiver.answer([410])
        let http = Fixtures.httpClient()
        try await TestDatabase.withClient { client in
            try await Fixtures.withLiveServer(receiver.router()) { port async throws in
                let store = PostgresWebhookRepository(client: client)
                let endpoint = try await store.createEndpoint(
                    url: "http://127.0.0.1:\(port)/hook", secret: try WebhookSecret(testSecret), eventTypes: [.exceeded], logger: Fixtures.logger)
                #expect(try await enqueue(.suspended, client: client).1 == 0)  // not a type it subscribed to
                #expect(try await enqueue(.exceeded, client: client).1 == 1)
                #expect(try await dispatcher(client, http: http).deliverDue() == 1)
                let endpoints = try await store.endpoints(logger: Fixtures.logger)
                #expect(endpoints.first { $0.id == endpoint }?.disabledReason == "receiver answered 410 Gone")
                #expect(try await enqueue(.exceeded, client: client).1 == 0)
                #expect(try await store.deliveries(endpoint: endpoint, logger: Fixtures.logger).map(\.outcome) == ["endpoint_disabled"])
            }
        }
        try await http.shutdown()
    }
}

@Suite(.freshDatabase) struct WebhookRestartTests {
    @Test func aNewDispatcherDeliversWhatTheOldOneLeft() async throws {
        let receiver = Receiver()
        await receiver.answer([503])
        let http = Fixtures.httpClient()
        try await TestDatabase.withClient { client in
            try await Fixtures.withLiveServer(receiver.router()) { port async throws in
                let endpoint = try await PostgresWebhookRepository(client: client).createEndpoint(
                    url: "http://127.0.0.1:\(port)/hook", secret: try WebhookSecret(testSecret), logger: Fixtures.logger)
                let (message, _) = try await enqueue(client: client)
                // The first instance tries once, the receiver is down, the attempt is recorded, and the instance stops.
                let store = PostgresWebhookRepository(client: client)
                // Its retry would come after five seconds, long after it has stopped (even on a loaded CI machine, where a
                // stop can take a second or more, and a retry it claimed before stopping would hold the message for the
                // lease): the retry is the new instance's.
                let slowRetry = RetrySchedule(initial: .seconds(5), factor: 2, maximum: .seconds(5), giveUpAfter: .seconds(60))
                try await Fixtures.running({ try await dispatcher(client, http: http, retry: slowRetry).run() }) { () async throws in
                    #expect(try await Fixtures.eventually { try await store.deliveries(endpoint: endpoint, logger: Fixtures.logger).count == 1 })
                }
                // A new instance, with its own database pool, picks the message up from the outbox.
                try await TestDatabase.withClient { restarted in
                    try await Fixtures.running({ try await dispatcher(restarted, http: http).run() }) { () async throws in
                        #expect(
                            try await Fixtures.eventually {
                                try await restarted.query(
                                    "SELECT status FROM webhook_outbox WHERE endpoint_id = \(endpoint)", logger: Fixtures.logger
                                )
                                .collect().first?.decode(String.self) == "delivered"
                            })
                    }
                }
                #expect(await receiver.deliveries.map(\.id) == [message.id, message.id])
                #expect(try await store.deliveries(endpoint: endpoint, logger: Fixtures.logger).map(\.httpStatus) == [204, 503])
            }
        }
        try await http.shutdown()
    }

}

@Suite(.freshDatabase) struct WebhookSSRFDeliveryTests {
    @Test func aLoopbackTargetIsRefusedWithoutExplicitPermission() async throws {
        let receiver = Receiver()
        let http = Fixtures.httpClient()
        try await TestDatabase.withClient { client in
            try await Fixtures.withLiveServer(receiver.router()) { port async throws in
                let endpoint = try await PostgresWebhookRepository(client: client).createEndpoint(
                    url: "http://127.0.0.1:\(port)/internal", secret: try WebhookSecret(testSecret), logger: Fixtures.logger)
                _ = try await enqueue(client: client)
                #expect(try await dispatcher(client, http: http, targets: .publicOnly).deliverDue() == 1)
                let log = try await PostgresWebhookRepository(client: client).deliveries(endpoint: endpoint, logger: Fixtures.logger)
                #expect(log.map(\.outcome) == ["failed"])
                #expect(log.first?.error == "webhook host 127.0.0.1 resolves to a loopback address, which the configuration does not allow")
            }
        }
        try await http.shutdown()
        #expect(await receiver.deliveries.isEmpty)
    }
}
