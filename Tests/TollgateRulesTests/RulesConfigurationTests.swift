import Foundation
import Testing
import TollgateRules

@Suite struct RulesConfigurationTests {
    @Test func defaultsRefusePrivateTargetsAndUseNoAPIM() throws {
        let configuration = try RulesConfiguration.parse(environment: [:])
        #expect(configuration.sweepInterval == .seconds(10))
        #expect(configuration.webhookTargets == .publicOnly)
        #expect(configuration.apim == nil)
    }

    @Test func apimFromEnvironmentWithTheTenantsTokenURL() throws {
        let configuration = try RulesConfiguration.parse(environment: [
            "TOLLGATE_APIM_SUBSCRIPTION_ID": "sub-1", "TOLLGATE_APIM_RESOURCE_GROUP": "rg", "TOLLGATE_APIM_SERVICE": "apim",
            "TOLLGATE_APIM_TENANT_ID": "tenant-9", "TOLLGATE_APIM_CLIENT_ID": "app", "TOLLGATE_APIM_CLIENT_SECRET": "hunter2",
            "TOLLGATE_WEBHOOKS_ALLOW_LOOPBACK": "true", "TOLLGATE_BUDGET_SWEEP_SECONDS": "5",
        ])
        let apim = try #require(configuration.apim)
        #expect(apim.tokenURL == "https://login.microsoftonline.com/tenant-9/oauth2/v2.0/token")
        #expect(apim.armBaseURL == "https://management.azure.com")
        #expect(apim.apiVersion == "2024-06-01-preview")
        #expect("\(apim.clientSecret)" == "<redacted>")
        #expect(configuration.webhookTargets == WebhookTargetPolicy(allowLoopback: true))
        #expect(configuration.sweepInterval == .seconds(5))
    }

    @Test func namesTheMissingOrInvalidVariable() {
        #expect(throws: RulesConfigurationError.missing(variable: "TOLLGATE_APIM_CLIENT_SECRET")) {
            try RulesConfiguration.parse(environment: [
                "TOLLGATE_APIM_SUBSCRIPTION_ID": "s", "TOLLGATE_APIM_RESOURCE_GROUP": "r", "TOLLGATE_APIM_SERVICE": "a",
                "TOLLGATE_APIM_TOKEN_URL": "http://127.0.0.1:1/token", "TOLLGATE_APIM_CLIENT_ID": "app",
            ])
        }
        #expect(throws: RulesConfigurationError.invalid(variable: "TOLLGATE_WEBHOOKS_ALLOW_PRIVATE", expected: "true or false")) {
            try RulesConfiguration.parse(environment: ["TOLLGATE_WEBHOOKS_ALLOW_PRIVATE": "maybe"])
        }
    }
}
