import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOHTTP1
import NIOSSL
import Testing
import TollgateCore
import TollgateGateway
import TollgateServer
import TollgateStore
import TollgateTestSupport

private let chatBody = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#

/// The metering proxy end to end through real sockets: a live Tollgate in front of a fake OpenAI upstream, on PostgreSQL.
@Suite(.freshDatabasePerTest) struct ProxyTests {
    @Test func nonStreamedReplyIsPassedThroughAndMeteredExactly() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            let requestID = try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(chatBody)) { response in
                    #expect(response.status == .ok)
                    let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                    #expect(body?["id"] as? String == "chatcmpl-fake-0")
                    #expect(((body?["usage"] as? [String: Any])?["total_tokens"] as? Int) == 18)
                    await runtime.writer.flush()
                    return try #require(response.headers[HTTPField.Name("x-request-id")!])
                }
            }
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.count == 1)
            let row = try #require(rows.first)
            #expect(row.requestID.uuidString.lowercased() == requestID)
            #expect(row.responseID == "chatcmpl-fake-0")
            #expect(row.subscription == "sub-a" && row.team == "search" && row.costCenter == "CC-1" && row.product == "standard")
            #expect(row.backend == "fake-openai" && row.deployment == "gpt-4o-mini" && row.route == "chat.completions")
            #expect(row.model == "gpt-4o-mini-2024-07-18")
            #expect(row.httpStatus == 200 && row.streamed == false)
            #expect([row.promptTokens, row.completionTokens, row.totalTokens, row.cachedTokens, row.reasoningTokens] as [Int] == [11, 7, 18, 3, 2])
            #expect(row.usageSource == "reported")

            // The client's key never goes upstream; the backend's credential takes its place.
            let sent = try #require(upstream.requests.first)
            #expect(sent.headers[.authorization] == "Bearer \(GatewayHarness.upstreamSecret)")
            #expect(!sent.rawBody.isEmpty && !sent.headers.contains { $0.value.contains(keys["sub-a"]!) })
        }
    }

    @Test func streamedReplyGetsInjectedUsageThatTheClientNeverSees() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            let body = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}"#
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(body)) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType] == "text/event-stream")
                    let text = String(buffer: response.body)
                    // Exactly what the upstream sends without include_usage: no usage chunk, no `"usage":null` fields.
                    #expect(!text.contains("usage"))
                    #expect(text.components(separatedBy: "data: ").count - 1 == 7)  // role, 4 pieces, finish, [DONE]
                    #expect(text.hasSuffix("data: [DONE]\n\n"))
                }
                await runtime.writer.flush()
            }
            let sent = try #require(upstream.requests.first)
            #expect(sent.rawBody.contains(#""include_usage":true"#))
            let row = try #require(try await GatewayHarness.usageRows().first)
            #expect(row.streamed && row.usageSource == "reported")
            #expect([row.promptTokens, row.completionTokens, row.totalTokens, row.cachedTokens, row.reasoningTokens] as [Int] == [11, 7, 18, 3, 2])
            #expect(row.responseID == "chatcmpl-fake-0" && row.model == "gpt-4o-mini-2024-07-18")
        }
    }

    @Test func streamedReplyKeepsTheUsageChunkWhenTheClientAskedForIt() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            let body = #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}"#
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-b"]!), body: .json(body)) { response in
                    let text = String(buffer: response.body)
                    #expect(text.contains(#""total_tokens":18"#))
                    #expect(text.contains(#""usage":null"#))
                }
                await runtime.writer.flush()
            }
            let row = try #require(try await GatewayHarness.usageRows().first)
            #expect(row.subscription == "sub-b" && row.totalTokens == 18 && row.usageSource == "reported")
        }
    }

    @Test func requestEditsAreMinimalAndHandleEveryShapeOfStreamOptions() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            // include_usage false, stream_options null, and a model key spelled with an escape: each gets include_usage
            // set, the usage chunk hidden from the client, and its usage recorded.
            let bodies = [
                #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"a"}]}"#,
                #"{"model":"gpt-4o-mini", "stream":true, "stream_options":null, "messages":[{"role":"user","content":"b"}]}"#,
                #"{"mod\u0065l":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"c"}]}"#,
            ]
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                for body in bodies {
                    try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(body)) { response in
                        #expect(response.status == .ok, "\(body)")
                        #expect(!String(buffer: response.body).contains("usage"), "\(body)")
                    }
                }
                // Not a JSON object: refused before anything is forwarded.
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(#"{"model":"gpt-4o-mini",}"#)) { response in
                    #expect(response.status == .badRequest)
                }
                await runtime.writer.flush()
            }
            let sent = upstream.requests.map(\.rawBody)
            #expect(sent.count == 3)
            for body in sent {
                let object = try #require((try JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any])
                #expect((object["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true, "\(body)")
                #expect(object["model"] as? String == "gpt-4o-mini", "\(body)")
            }
            // Untouched bytes pass as sent: the spacing of the second request survives.
            #expect(sent.count > 1 && sent[1].hasPrefix(#"{"model":"gpt-4o-mini", "stream":true, "stream_options":{"include_usage":true}, "messages""#))
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.count == 3 && rows.allSatisfy { $0.usageSource == "reported" && $0.totalTokens == 18 })
        }
    }

    @Test func replyWithoutUsageIsRecordedAsEstimatedNeverAsASilentZero() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            // Counted with o200k_base (the default for a model it does not know): reply priming 3, the message 3,
            // "user" 1, "Say hello there!" 4 — 11 prompt tokens; the stream's "Hello from the fake" is 4 tokens.
            let plain = #"{"model":"no-usage","messages":[{"role":"user","content":"Say hello there!"}]}"#
            let streamed = #"{"model":"no-usage","stream":true,"messages":[{"role":"user","content":"Say hello there!"}]}"#
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(plain)) { #expect($0.status == .ok) }
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(streamed)) { #expect($0.status == .ok) }
                await runtime.writer.flush()
            }
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.map(\.usageSource) == ["estimated", "estimated"])
            #expect(rows.map(\.promptTokens) == [11, 11])
            #expect(rows.map(\.completionTokens) == [0, 4])  // the streamed one: the text that passed
        }
    }

    @Test func streamCutOffByTheUpstreamIsRecordedAsEstimated() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            let body = #"{"model":"broken-stream","stream":true,"messages":[{"role":"user","content":"Say hello there!"}]}"#
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                _ = try? await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(body))
                try await Task.sleep(for: .milliseconds(200))
                await runtime.writer.flush()
            }
            let row = try #require(try await GatewayHarness.usageRows().first)
            #expect(row.usageSource == "estimated")
            #expect(row.promptTokens == 11 && row.completionTokens == 2)  // "Hello from" passed: 2 tokens
        }
    }

    @Test func clientDisconnectMidStreamIsRecordedAsEstimated() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                let gatewayPort = try #require(client.port)
                let http = HTTPClient(eventLoopGroupProvider: .singleton)
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(gatewayPort)/v1/chat/completions")
                request.method = .POST
                request.headers.add(name: "authorization", value: "Bearer \(keys["sub-a"]!)")
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: #"{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"Say hello there!"}]}"#))
                // Read the first content, then hang up.
                let reader = Task {
                    let response = try await http.execute(request, timeout: .seconds(10))
                    var seen = ""
                    for try await chunk in response.body {
                        seen += String(buffer: chunk)
                        if seen.contains("Hello") { return seen }
                    }
                    return seen
                }
                let seen = try await reader.value
                #expect(seen.contains("Hello"))
                try await http.shutdown()  // closes the connection mid-stream
                // The row is written once the gateway has seen the client go (well before the stream's last piece).
                for _ in 0..<50 {
                    await runtime.writer.flush()
                    if try await !GatewayHarness.usageRows().isEmpty { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let row = try #require(try await GatewayHarness.usageRows().first)
            #expect(row.usageSource == "estimated")
            #expect(row.promptTokens == 11)
            #expect((1...3).contains(row.completionTokens))  // cut off before the fourth piece (one token each)
        }
    }

    @Test func httpsUpstreamIsVerifiedAgainstTheSystemRootsAndTheConfiguredCA() async throws {
        // A self-signed certificate for localhost: refused by default, trusted through TOLLGATE_UPSTREAM_CA_FILE.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let made = try ChildProcess.run("/usr/bin/env", [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", certificate,
            "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
        ], environment: ProcessInfo.processInfo.environment)
        try #require(made.status == 0, "openssl: \(made.output)")
        let serverTLS = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))

        let upstream = FakeOpenAIUpstream()
        try await upstream.run(tls: serverTLS) { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port, scheme: "https"))
            var configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, _ in
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(chatBody)) { response in
                    #expect(response.status == .badGateway)
                }
            }
            #expect(upstream.requests.isEmpty)
            // A file that holds no certificate (a key, plain text) stops the start-up, naming the setting.
            let text = directory.appendingPathComponent("notes.txt").path
            try "not a certificate\n".write(toFile: text, atomically: true, encoding: .utf8)
            for file in [key, text] {
                configuration.upstreamCAFile = file
                await #expect {
                    try await GatewayHarness.withLiveGateway(configuration: configuration) { _, _ in }
                } throws: { error in
                    (error as? ConfigurationError)?.variable == "TOLLGATE_UPSTREAM_CA_FILE"
                }
            }
            configuration.upstreamCAFile = certificate
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                for _ in 0..<3 {  // the second and third reuse the pooled TLS connection
                    try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(chatBody)) { response in
                        #expect(response.status == .ok)
                        #expect(String(buffer: response.body).contains(#""total_tokens":18"#))
                    }
                }
                await runtime.writer.flush()
            }
            #expect(upstream.requests.count == 3)
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.filter { $0.httpStatus == 200 && $0.usageSource == "reported" && $0.totalTokens == 18 }.count == 3)
            #expect(rows.filter { $0.httpStatus == 502 && $0.usageSource == "missing" }.count == 1)
        }
    }

    @Test func upstreamErrorsPassThroughWithBodyAndRetryAfter() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                let body = #"{"model":"rate-limited","messages":[]}"#
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(body)) { response in
                    #expect(response.status == .tooManyRequests)
                    #expect(response.headers[HTTPField.Name("Retry-After")!] == "7")
                    #expect(String(buffer: response.body).contains("rate_limit_exceeded"))
                }
                let failing = #"{"model":"server-error","messages":[]}"#
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(failing)) { response in
                    #expect(response.status == .internalServerError)
                    #expect(String(buffer: response.body).contains("The server had an error"))
                }
                // Asked for a stream, an error reply (not an event stream) is passed on whole, and metered as such.
                let streamed = #"{"model":"rate-limited","stream":true,"messages":[]}"#
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(streamed)) { response in
                    #expect(response.status == .tooManyRequests)
                    #expect(response.headers[.contentLength] == String(response.body.readableBytes))
                    #expect(String(buffer: response.body).contains("rate_limit_exceeded"))
                }
                await runtime.writer.flush()
            }
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.map(\.httpStatus) == [429, 500, 429])
            #expect(rows.map(\.usageSource) == ["missing", "missing", "missing"])
        }
    }

    @Test func unreachableAndSlowUpstreamsGet502And504InTheOpenAIShape() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port, readTimeoutSeconds: 1))
            let configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, _ in
                let dead = #"{"model":"unreachable-model","messages":[]}"#
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(dead)) { response in
                    #expect(response.status == .badGateway)
                    let error = try JSONDecoder().decode(OpenAIErrorEnvelope.self, from: Data(response.body.readableBytesView)).error
                    #expect(error.code == "upstream_unavailable")
                    #expect(!error.message.contains("127.0.0.1"))
                }
                let slow = #"{"model":"slow","messages":[]}"#
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(slow)) { response in
                    #expect(response.status == .gatewayTimeout)
                    let error = try JSONDecoder().decode(OpenAIErrorEnvelope.self, from: Data(response.body.readableBytesView)).error
                    #expect(error.code == "upstream_timeout")
                }
            }
        }
    }

    @Test func azureStyleRouteForwardsToTheDeploymentWithTheBackendKey() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                let headers: HTTPFields = [HTTPField.Name("api-key")!: keys["sub-b"]!, .contentType: "application/json"]
                try await client.execute(
                    uri: "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01", method: .post, headers: headers,
                    body: .json(#"{"messages":[{"role":"user","content":"hi"}]}"#)
                ) { response in
                    #expect(response.status == .ok)
                }
                // The APIM header name works too.
                let apim: HTTPFields = [HTTPField.Name("Ocp-Apim-Subscription-Key")!: keys["sub-b"]!, .contentType: "application/json"]
                try await client.execute(uri: "/v1/embeddings", method: .post, headers: apim, body: .json(#"{"model":"text-embedding-3-small","input":"abc"}"#)) {
                    #expect($0.status == .ok)
                }
                await runtime.writer.flush()
            }
            let sent = try #require(upstream.requests.first)
            #expect(sent.path == "/openai/deployments/gpt4o-prod/chat/completions")
            #expect(sent.query == "api-version=2024-06-01")
            #expect(sent.headers[HTTPField.Name("api-key")!] == GatewayHarness.upstreamSecret)
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.map(\.backend) == ["fake-azure", "fake-openai"])
            #expect(rows.map(\.deployment) == ["gpt4o-prod", "text-embedding-3-small"])
            #expect(rows.map(\.route) == ["chat.completions", "embeddings"])
            #expect(rows.map(\.promptTokens) == [11, 5])
        }
    }
}
