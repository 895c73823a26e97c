import PostgresNIO

/// A business rule that the database itself enforces (a trigger), refused: the caller asked for something the books do
/// not allow. Each case has a stable `code` for the admin API and a message for people; no SQL or server text leaks.
public enum DomainRuleError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stored price version was to be changed or deleted; prices are append-only.
    case priceVersionImmutable
    /// A price was to start inside a closed billing month.
    case priceInClosedPeriod
    /// A closed month's provisioned-throughput commitment was to change.
    case commitmentFrozen
    /// The audit trail was to be changed or deleted.
    case auditAppendOnly

    /// Stable, documented in docs/errors.md.
    public var code: String {
        switch self {
        case .priceVersionImmutable: "price_conflict"
        case .priceInClosedPeriod: "period_closed"
        case .commitmentFrozen: "period_closed"
        case .auditAppendOnly: "audit_append_only"
        }
    }

    public var description: String {
        switch self {
        case .priceVersionImmutable: "prices are versioned: add a version with a later effective_from instead of changing or deleting one"
        case .priceInClosedPeriod: "a price may not start inside a closed billing period; a closed month's prices never change"
        case .commitmentFrozen: "the commitment of a closed billing period cannot change; set it from the first open month"
        case .auditAppendOnly: "the audit trail is append-only"
        }
    }

    /// The constraint names the triggers raise with (`sql/0320_domain_rule_constraints.sql`).
    static let byConstraint: [String: DomainRuleError] = [
        "tollgate_price_versions_append_only": .priceVersionImmutable,
        "tollgate_price_in_closed_period": .priceInClosedPeriod,
        "tollgate_commitment_frozen": .commitmentFrozen,
        "tollgate_audit_append_only": .auditAppendOnly,
    ]

    /// The domain rule behind a database error, if a trigger of ours raised it.
    static func from(_ error: any Error) -> DomainRuleError? {
        let psql: PSQLError? =
            (error as? PSQLError) ?? ((error as? PostgresTransactionError)?.closureError as? PSQLError)
        guard let constraint = psql?.serverInfo?[.constraintName] else { return nil }
        return byConstraint[constraint]
    }

    /// Runs `body`, turning a trigger-enforced refusal into its `DomainRuleError`; any other error passes unchanged.
    @discardableResult
    static func mapping<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            if let rule = from(error) { throw rule }
            throw error
        }
    }
}
