import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Testing
import TollgateCore
import TollgateRules
import TollgateStore
import TollgateTestSupport

/// A fake Azure Resource Manager plus Entra token endpoint. It checks what a real one would insist on and records
/// what it saw, so tests assert on requests rather than on the adapter's own account of them.
actor FakeARM {
    var state = "active"
    var etagVersion = 1
    var etag: String { "\"v\(etagVersion)\"" }
    var tokensIssued = 0
    var tokenLifetimeSeconds = 3599
    var gets = 0
    var acceptedPatches: [String] = []
    var rejectedPatches = 0
    var problems: [String] = []
    /// Answers to hand out before behaving normally, per method: 429 (with Retry-After: 1), 412 (with a changed ETag), 503.
    var scriptedGetAnswers: [Int] = []
    var scriptedPatchAnswers: [Int] = []

    static let resourcePath = "/subscriptions/sub-123/resourceGroups/rg-ai/providers/Microsoft.ApiManagement/service/apim-prod/subscriptions/team-a"

    func script(gets: [Int] = [], patches: [Int] = []) {
        scriptedGetAnswers = gets
        scriptedPatchAnswers = patches
    }
    func setTokenLifetime(_ seconds: Int) { tokenLifetimeSeconds = seconds }
    func setState(_ state: String) { self.state = state }

    func token(form: String, contentType: String?) -> (HTTPResponse.Status, String) {
        if contentType != "application/x-www-form-urlencoded" { problems.append("token content-type \(contentType ?? "none")") }
        let expected =
            "grant_type=client_credentials&client_id=tollgate-app&client_secret=s3cr%2Bt%26x&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
        if form != expected { problems.append("token form \(form)") }
        tokensIssued += 1
        return (.ok, #"{"token_type":"Bearer","expires_in":\#(tokenLifetimeSeconds),"access_token":"token-\#(tokensIssued)"}"#)
    }

    func check(_ request: Request, method: String) {
        if request.uri.path != Self.resourcePath { problems.append("\(method) path \(request.uri.path)") }
        if request.uri.queryParameters.get("api-version") != "2024-06-01-preview" { problems.append("\(method) query \(request.uri.query ?? "")") }
        if request.headers[.authorization] != "Bearer token-\(tokensIssued)" { problems.append("\(method) authorization") }
    }

    func get(_ request: Request) -> (HTTPResponse.Status, String, String) {
        check(request, method: "GET")
        gets += 1
        if !scriptedGetAnswers.isEmpty {
            let status = scriptedGetAnswers.removeFirst()
            return (.init(code: status), etag, "{}")
        }
        return (.ok, etag, #"{"id":"\#(Self.resourcePath)","name":"team-a","properties":{"state":"\#(state)","displayName":"Team A"}}"#)
    }

    func patch(_ request: Request, body: String) -> (HTTPResponse.Status, String) {
        check(request, method: "PATCH")
        if request.headers[.contentType] != "application/json" { problems.append("PATCH content-type") }
        if !scriptedPatchAnswers.isEmpty {
            let status = scriptedPatchAnswers.removeFirst()
            if status == 412 { etagVersion += 1 }  // someone else changed it meanwhile
            rejectedPatches += 1
            return (.init(code: status), etag)
        }
        guard request.headers[.ifMatch] == etag else {
            problems.append("PATCH If-Match \(request.headers[.ifMatch] ?? "none") but ETag is \(etag)")
            rejectedPatches += 1
            return (.preconditionFailed, etag)
        }
        guard body == #"{"properties":{"state":"suspended"}}"# || body == #"{"properties":{"state":"active"}}"# else {
            problems.append("PATCH body \(body)")
            return (.badRequest, etag)
        }
        acceptedPatches.append(body)
        state = body.contains("suspended") ? "suspended" : "active"
        etagVersion += 1
        return (.ok, etag)
    }

    nonisolated func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/tenant-1/oauth2/v2.0/token") { request, _ -> Response in
            let form = String(buffer: try await request.body.collect(upTo: 1 << 16))
            let (status, json) = await self.token(form: form, contentType: request.headers[.contentType])
            return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
        }
        router.get("/subscriptions/:sub/resourceGroups/:rg/providers/Microsoft.ApiManagement/service/:service/subscriptions/:sid") {
            request, _ -> Response in
            let (status, etag, json) = await self.get(request)
            var headers: HTTPFields = [.contentType: "application/json", .eTag: etag]
            if status == .tooManyRequests { headers[.retryAfter] = "1" }
            return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
        }
        router.patch("/subscriptions/:sub/resourceGroups/:rg/providers/Microsoft.ApiManagement/service/:service/subscriptions/:sid") {
            request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 1 << 16))
            let (status, etag) = await self.patch(request, body: body)
            var headers: HTTPFields = [.eTag: etag]
            if status == .tooManyRequests { headers[.retryAfter] = "1" }
            return Response(status: status, headers: headers)
        }
        return router
    }

    static func suspender(port: Int, http: HTTPClient) -> AzureAPIMSuspender {
        AzureAPIMSuspender(
            http: http,
            configuration: .init(
                armBaseURL: "http://127.0.0.1:\(port)", azureSubscriptionID: "sub-123", resourceGroup: "rg-ai", serviceName: "apim-prod",
                tokenURL: "http://127.0.0.1:\(port)/tenant-1/oauth2/v2.0/token", clientID: "tollgate-app", clientSecret: Secret("s3cr+t&x"),
                initialBackoff: .milliseconds(50), maxBackoff: .seconds(2)))
    }
}

private let reason = SuspensionReason(budget: "team-a-monthly", message: "over budget", actor: "rules-engine")

@Suite struct AzureAPIMSuspenderTests {
    @Test func oneTransitionIsOnePatchAndTheTokenIsCached() async throws {
        let arm = FakeARM()
        let http = Fixtures.httpClient()
        try await Fixtures.withLiveServer(arm.router()) { port async throws in
            let apim = FakeARM.suspender(port: port, http: http)
            #expect(try await apim.suspend("team-a", reason: reason, logger: Fixtures.logger) == .changed)
            #expect(try await apim.suspend("team-a", reason: reason, logger: Fixtures.logger) == .alreadyInState)
            #expect(try await apim.resume("team-a", reason: reason, onlyIfSuspendedByRulesEngine: true, logger: Fixtures.logger) == .changed)
            #expect(try await apim.resume("team-a", reason: reason, onlyIfSuspendedByRulesEngine: true, logger: Fixtures.logger) == .alreadyInState)
        }
        try await http.shutdown()
        #expect(await arm.acceptedPatches == [#"{"properties":{"state":"suspended"}}"#, #"{"properties":{"state":"active"}}"#])
        #expect(await arm.gets == 4)
        #expect(await arm.tokensIssued == 1)
        #expect(await arm.problems == [])
    }

    @Test func staleETagIsReadAgainAndPatchedOnce() async throws {
        let arm = FakeARM()
        await arm.script(patches: [412])
        let http = Fixtures.httpClient()
        try await Fixtures.withLiveServer(arm.router()) { port async throws in
            #expect(try await FakeARM.suspender(port: port, http: http).suspend("team-a", reason: reason, logger: Fixtures.logger) == .changed)
        }
        try await http.shutdown()
        #expect(await arm.rejectedPatches == 1)
        #expect(await arm.acceptedPatches == [#"{"properties":{"state":"suspended"}}"#])
        #expect(await arm.gets == 2)
        #expect(await arm.problems == [])
    }

    @Test func throttlingAndServerErrorsAreRetriedHonouringRetryAfter() async throws {
        let arm = FakeARM()
        await arm.script(gets: [429, 503])
        let http = Fixtures.httpClient()
        let started = ContinuousClock.now
        try await Fixtures.withLiveServer(arm.router()) { port async throws in
            #expect(try await FakeARM.suspender(port: port, http: http).suspend("team-a", reason: reason, logger: Fixtures.logger) == .changed)
        }
        let elapsed = ContinuousClock.now - started
        try await http.shutdown()
        #expect(elapsed >= .milliseconds(1000))  // Retry-After: 1 was waited out (a lower bound; sleeps are never shorter)
        #expect(await arm.gets == 3)
        #expect(await arm.acceptedPatches.count == 1)
        #expect(await arm.problems == [])
    }

    @Test func aTokenCloseToExpiryIsFetchedAgain() async throws {
        let arm = FakeARM()
        await arm.setTokenLifetime(60)  // inside the 120 s refresh margin: never reused
        let http = Fixtures.httpClient()
        try await Fixtures.withLiveServer(arm.router()) { port async throws in
            let apim = FakeARM.suspender(port: port, http: http)
            try await apim.suspend("team-a", reason: reason, logger: Fixtures.logger)
            try await apim.resume("team-a", reason: reason, onlyIfSuspendedByRulesEngine: false, logger: Fixtures.logger)
        }
        try await http.shutdown()
        #expect(await arm.tokensIssued == 4)  // GET + PATCH, twice
        #expect(await arm.problems == [])
    }

    @Test func aCancelledAPIMSubscriptionIsNotReactivated() async throws {
        let arm = FakeARM()
        await arm.setState("cancelled")
        let http = Fixtures.httpClient()
        try await Fixtures.withLiveServer(arm.router()) { port async throws in
            let apim = FakeARM.suspender(port: port, http: http)
            #expect(try await apim.resume("team-a", reason: reason, onlyIfSuspendedByRulesEngine: false, logger: Fixtures.logger) == .refused)
            #expect(try await apim.suspend("team-a", reason: reason, logger: Fixtures.logger) == .refused)
        }
        try await http.shutdown()
        #expect(await arm.acceptedPatches.isEmpty)
    }

    @Test(arguments: [("1", 1000), ("0", 0), ("soon", -1)])
    func retryAfterParsing(header: String, milliseconds: Int) {
        let parsed = RetryBackoff.retryAfter(header, now: Date())
        #expect(parsed == (milliseconds < 0 ? nil : .milliseconds(milliseconds)))
    }

    @Test func retryAfterAsHTTPDate() {
        let now = utc("2026-11-25T10:00:00Z")
        #expect(RetryBackoff.retryAfter("Wed, 25 Nov 2026 10:00:05 GMT", now: now) == .seconds(5))
    }
}

@Suite(.freshDatabase) struct CompositeSuspenderTests {
    @Test func theCatalogDecidesAndAPIMFollows() async throws {
        let arm = FakeARM()
        let http = Fixtures.httpClient()
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", "search", nil)], client: client)
            try await Fixtures.withLiveServer(arm.router()) { port async throws in
                let both = CompositeSuspender([Fixtures.suspender(client), FakeARM.suspender(port: port, http: http)])
                #expect(both.name == "tollgate+azure-apim")
                #expect(try await both.suspend("team-a", reason: reason, logger: Fixtures.logger) == .changed)
                // An administrator takes the suspension over: rollover must not reactivate it anywhere.
                try await CatalogStore(client: client).setState("team-a", to: .suspended, reason: "held", actor: "admin:fay", logger: Fixtures.logger)
                #expect(try await both.resume("team-a", reason: reason, onlyIfSuspendedByRulesEngine: true, logger: Fixtures.logger) == .refused)
                #expect(try await both.resume("team-a", reason: reason, onlyIfSuspendedByRulesEngine: false, logger: Fixtures.logger) == .changed)
            }
        }
        try await http.shutdown()
        #expect(await arm.acceptedPatches == [#"{"properties":{"state":"suspended"}}"#, #"{"properties":{"state":"active"}}"#])
        #expect(await arm.problems == [])
    }
}
