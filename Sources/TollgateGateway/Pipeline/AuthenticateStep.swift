import HTTPTypes
import TollgateStore

/// Finds the presented subscription key in the loaded catalog. The key may come as `api-key`,
/// `Ocp-Apim-Subscription-Key` or `Authorization: Bearer`; it is compared by its SHA-256.
///
/// Writes `request.catalog` (the snapshot the rest of the request is decided against) and `request.key`. Refuses with
/// `missing_api_key` or `invalid_api_key`. An unknown key while the catalog may be stale (another instance just
/// created it) makes the step ask for one reload, off the event loop, before it decides.
struct AuthenticateStep: GatewayStep {
    let catalog: GatewayCatalog

    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        var presented = request.headers[.apiKey] ?? request.headers[.apimSubscriptionKey]
        if presented == nil, let authorization = request.headers[.authorization] {
            presented = Self.bearerToken(authorization)
        }
        guard let presented, !presented.isEmpty else { throw GatewayError.missingKey }
        switch catalog.lookUp(keyHash: KeyStore.hash(presented)) {
        case .found(let key, let snapshot):
            request.key = key
            request.catalog = snapshot
            return .next
        case .reloadFirst where !request.reloadedCatalog:
            request.reloadedCatalog = true
            let catalog = self.catalog
            return .retry { await catalog.refresh() }
        case .unknown, .reloadFirst:
            throw GatewayError.invalidKey
        }
    }

    /// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, blanks around the token ignored).
    static func bearerToken(_ authorization: String) -> String? {
        let bytes = authorization.utf8
        guard bytes.count > 7, bytes.prefix(6).elementsEqual("bearer".utf8, by: { $0 | 0x20 == $1 }), bytes.dropFirst(6).first == UInt8(ascii: " ") else {
            return nil
        }
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var token = bytes.dropFirst(7)
        while let first = token.first, isBlank(first) { token = token.dropFirst() }
        while let last = token.last, isBlank(last) { token = token.dropLast() }
        return token.isEmpty ? nil : String(Substring(token))
    }
}
