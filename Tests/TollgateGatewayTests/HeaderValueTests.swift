import Foundation
import Testing

@testable import TollgateGateway

/// What the gateway reads from and writes into headers on every request.
@Suite struct HeaderValueTests {
    @Test func requestIDsAreLowercaseUUIDs() {
        for _ in 0..<1000 {
            let id = UUID()
            #expect(id.lowercasedString == id.uuidString.lowercased())
        }
    }

    @Test func theTokenOfABearerAuthorization() {
        #expect(AuthenticateStep.bearerToken("Bearer tgk_abc") == "tgk_abc")
        #expect(AuthenticateStep.bearerToken("bearer  tgk_abc \t") == "tgk_abc")
        #expect(AuthenticateStep.bearerToken("BEARER\ttgk_abc") == nil)  // the scheme is followed by a space
        #expect(AuthenticateStep.bearerToken("Bearer ") == nil)
        #expect(AuthenticateStep.bearerToken("Bearer    ") == nil)
        #expect(AuthenticateStep.bearerToken("Basic dXNlcjpwYXNz") == nil)
        #expect(AuthenticateStep.bearerToken("Bearertgk_abc") == nil)
        #expect(AuthenticateStep.bearerToken("Bearer é-ü") == "é-ü")
    }
}
