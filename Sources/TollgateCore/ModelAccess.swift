/// Which deployment names (what clients send as `model`, or the `{deployment}` of an Azure-style path) a caller may
/// use: its product's `allowed_models` and its subscription's `allowed_models`, each a list of `*` patterns.
///
/// No list means no restriction (so a catalog without lists behaves as before). With both lists a name must match
/// both: a subscription can narrow what its product allows, never widen it.
public struct ModelAccess: Hashable, Sendable {
    /// The product's patterns; nil when the product sets none (or the subscription has no product).
    public var product: [String]?
    /// The subscription's patterns; nil when it sets none.
    public var subscription: [String]?

    public init(product: [String]? = nil, subscription: [String]? = nil) {
        self.product = product
        self.subscription = subscription
    }

    /// True when neither list is set: every deployment is allowed, and nothing needs checking.
    public var isUnrestricted: Bool { product == nil && subscription == nil }

    /// Whether the caller may use the deployment `name`.
    public func allows(_ name: String) -> Bool {
        Self.matchesAny(product, name) && Self.matchesAny(subscription, name)
    }

    /// True for no list; otherwise whether one of `patterns` matches `name`.
    static func matchesAny(_ patterns: [String]?, _ name: String) -> Bool {
        guard let patterns else { return true }
        return patterns.contains { Self.matches(pattern: $0, name) }
    }

    /// Whether `name` matches `pattern`, where `*` stands for any run of characters (none included) and every other
    /// character stands for itself (no `?`, no classes: deployment names may contain `.`, `-`, `_`). Compared by
    /// Unicode scalar, case-sensitively, as routes are looked up.
    public static func matches(pattern: String, _ name: String) -> Bool {
        let p = Array(pattern.unicodeScalars)
        let n = Array(name.unicodeScalars)
        // Greedy matching with backtracking to the last `*`: linear in practice, never exponential.
        var pi = 0, ni = 0
        var star: Int? = nil, resume = 0
        while ni < n.count {
            if pi < p.count, p[pi] != "*", p[pi] == n[ni] {
                pi += 1
                ni += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi
                resume = ni
                pi += 1
            } else if let star {
                pi = star + 1
                resume += 1
                ni = resume
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
