import AsyncHTTPClient
import Foundation
import TollgateCore
import TollgateStore

/// The rules engine's settings, read from the environment (`TOLLGATE_` prefix). Parsing takes a dictionary so tests
/// pass one; the server passes `ProcessInfo.processInfo.environment`.
///
/// | variable | meaning |
/// |---|---|
/// | `TOLLGATE_BUDGET_SWEEP_SECONDS` | safety-net evaluation interval (default 10) |
/// | `TOLLGATE_WEBHOOKS_ALLOW_LOOPBACK` | `true` lets webhooks target 127.0.0.0/8 and ::1 (default false) |
/// | `TOLLGATE_WEBHOOKS_ALLOW_PRIVATE` | `true` lets webhooks target RFC 1918 / CGNAT / unique-local addresses (default false) |
/// | `TOLLGATE_APIM_SUBSCRIPTION_ID`, `TOLLGATE_APIM_RESOURCE_GROUP`, `TOLLGATE_APIM_SERVICE` | the APIM instance; setting any enables the Azure adapter |
/// | `TOLLGATE_APIM_TENANT_ID` or `TOLLGATE_APIM_TOKEN_URL` | Entra tenant (token URL derived) or an explicit token endpoint |
/// | `TOLLGATE_APIM_CLIENT_ID`, `TOLLGATE_APIM_CLIENT_SECRET` | the app registration allowed to PATCH the APIM subscriptions |
/// | `TOLLGATE_APIM_ARM_URL` | Azure Resource Manager (default `https://management.azure.com`) |
/// | `TOLLGATE_APIM_API_VERSION` | default `2024-06-01-preview` |
public struct RulesConfiguration: Sendable {
    public var sweepInterval: Duration
    public var webhookTargets: WebhookTargetPolicy
    /// Nil unless the APIM variables are set: suspensions then go to Tollgate's catalog only.
    public var apim: AzureAPIMConfiguration?

    public init(sweepInterval: Duration = .seconds(10), webhookTargets: WebhookTargetPolicy = .publicOnly, apim: AzureAPIMConfiguration? = nil) {
        self.sweepInterval = sweepInterval
        self.webhookTargets = webhookTargets
        self.apim = apim
    }

    /// - Throws: `RulesConfigurationError` naming the variable; never echoes a secret's value.
    public static func parse(environment: [String: String]) throws(RulesConfigurationError) -> RulesConfiguration {
        func flag(_ name: String) throws(RulesConfigurationError) -> Bool {
            guard let value = environment[name]?.lowercased() else { return false }
            switch value {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off", "": return false
            default: throw .invalid(variable: name, expected: "true or false")
            }
        }
        var configuration = RulesConfiguration()
        if let text = environment["TOLLGATE_BUDGET_SWEEP_SECONDS"] {
            guard let seconds = Int(text), (1...3600).contains(seconds) else {
                throw .invalid(variable: "TOLLGATE_BUDGET_SWEEP_SECONDS", expected: "whole seconds between 1 and 3600")
            }
            configuration.sweepInterval = .seconds(seconds)
        }
        configuration.webhookTargets = WebhookTargetPolicy(
            allowLoopback: try flag("TOLLGATE_WEBHOOKS_ALLOW_LOOPBACK"), allowPrivateNetworks: try flag("TOLLGATE_WEBHOOKS_ALLOW_PRIVATE"))
        let apimKeys = ["TOLLGATE_APIM_SUBSCRIPTION_ID", "TOLLGATE_APIM_RESOURCE_GROUP", "TOLLGATE_APIM_SERVICE"]
        guard apimKeys.contains(where: { environment[$0] != nil }) else { return configuration }
        func required(_ name: String) throws(RulesConfigurationError) -> String {
            guard let value = environment[name], !value.isEmpty else { throw .missing(variable: name) }
            return value
        }
        let tokenURL: String
        if let explicit = environment["TOLLGATE_APIM_TOKEN_URL"] {
            tokenURL = explicit
        } else {
            tokenURL = "https://login.microsoftonline.com/\(try required("TOLLGATE_APIM_TENANT_ID"))/oauth2/v2.0/token"
        }
        configuration.apim = AzureAPIMConfiguration(
            armBaseURL: environment["TOLLGATE_APIM_ARM_URL"] ?? "https://management.azure.com",
            azureSubscriptionID: try required("TOLLGATE_APIM_SUBSCRIPTION_ID"), resourceGroup: try required("TOLLGATE_APIM_RESOURCE_GROUP"),
            serviceName: try required("TOLLGATE_APIM_SERVICE"), apiVersion: environment["TOLLGATE_APIM_API_VERSION"] ?? "2024-06-01-preview",
            tokenURL: tokenURL, clientID: try required("TOLLGATE_APIM_CLIENT_ID"), clientSecret: Secret(try required("TOLLGATE_APIM_CLIENT_SECRET")))
        return configuration
    }
}

extension RulesConfiguration {
    /// The management adapter budgets suspend through: Tollgate's own catalog, followed by Azure API Management when
    /// configured (the catalog decides, so an administrator's suspension is never overridden in either).
    /// - Parameter http: the process's shared client (redirects disallowed).
    /// - Parameter subscriptions: Tollgate's catalog, where subscription state is kept.
    public func suspender(subscriptions: any SubscriptionStateRepository, http: HTTPClient) -> any SubscriptionSuspender {
        let tollgate = TollgateSuspender(subscriptions: subscriptions)
        guard let apim else { return tollgate }
        return CompositeSuspender([tollgate, AzureAPIMSuspender(http: http, configuration: apim)])
    }
}

public enum RulesConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    case missing(variable: String)
    case invalid(variable: String, expected: String)

    public var description: String {
        switch self {
        case .missing(let variable): "\(variable) is required when the Azure API Management adapter is configured"
        case .invalid(let variable, let expected): "\(variable) must be \(expected)"
        }
    }
}
