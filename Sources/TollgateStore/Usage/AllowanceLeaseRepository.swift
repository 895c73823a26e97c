import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// One slice asked of (or given back to) a shared minute limit: `amount` of `allowance` for `scope` in the fixed UTC
/// minute starting at `window`.
public struct AllowanceSlice: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case tokensPerMinute = "tokens_per_minute"
        case requestsPerMinute = "requests_per_minute"
    }
    public var kind: Kind
    /// What the limit applies to, e.g. `subscription:team-a`.
    public var scope: String
    public var window: Date
    /// The limit in force for the window.
    public var allowance: Int
    public var amount: Int

    public init(kind: Kind, scope: String, window: Date, allowance: Int, amount: Int) {
        self.kind = kind
        self.scope = scope
        self.window = window
        self.allowance = allowance
        self.amount = amount
    }
}

/// Where instances lease slices of the minute limits' allowances (`sql/0460_admission_allowances.sql`): the sum of
/// what is granted for a window never passes its allowance, however many instances ask at once.
public protocol AllowanceLeaseRepository: Sendable {
    /// Leases each slice in one round trip; returns, in order, the amount granted for each (less than asked, down to
    /// 0, when the window's allowance is used up) and what is left of its window's allowance after it.
    func lease(_ slices: [AllowanceSlice], logger: Logger) async throws -> [(granted: Int, left: Int)]
    /// Gives back what an instance leased and will not use.
    func giveBack(_ slices: [AllowanceSlice], logger: Logger) async throws
    /// Forgets windows that started before `instant`.
    func purge(before instant: Date, logger: Logger) async throws
}

/// `AllowanceLeaseRepository` over `admission_allowances`.
public struct PostgresAllowanceLeaseRepository: AllowanceLeaseRepository {
    let client: PostgresClient

    package init(client: PostgresClient) { self.client = client }

    public func lease(_ slices: [AllowanceSlice], logger: Logger) async throws -> [(granted: Int, left: Int)] {
        guard !slices.isEmpty else { return [] }
        let (kinds, scopes, windows, allowances, amounts) = Self.columns(slices)
        // One statement for every slice, cut in the order given (ordinality), so a batch is one round trip.
        let rows = try await client.query("""
            SELECT l.slice, l.left_after
            FROM unnest(\(kinds)::text[], \(scopes)::text[], \(windows)::timestamptz[], \(allowances)::bigint[], \(amounts)::bigint[])
                WITH ORDINALITY AS s(kind, scope, window_start, allowance, amount, position),
                LATERAL tollgate_lease_allowance(s.kind, s.scope, s.window_start, s.allowance, s.amount) AS l
            ORDER BY s.position
            """, logger: logger)
        var granted: [(granted: Int, left: Int)] = []
        for try await (slice, left) in rows.decode((Int, Int).self) { granted.append((slice, left)) }
        return granted
    }

    public func giveBack(_ slices: [AllowanceSlice], logger: Logger) async throws {
        guard !slices.isEmpty else { return }
        let (kinds, scopes, windows, _, amounts) = Self.columns(slices)
        try await client.query("""
            UPDATE admission_allowances AS a SET granted = GREATEST(a.granted - s.amount, 0)
            FROM unnest(\(kinds)::text[], \(scopes)::text[], \(windows)::timestamptz[], \(amounts)::bigint[]) AS s(kind, scope, window_start, amount)
            WHERE a.limit_kind = s.kind AND a.scope = s.scope AND a.window_start = s.window_start
            """, logger: logger)
    }

    public func purge(before instant: Date, logger: Logger) async throws {
        try await client.query("DELETE FROM admission_allowances WHERE window_start < \(instant)", logger: logger)
    }

    private static func columns(_ slices: [AllowanceSlice]) -> ([String], [String], [Date], [Int], [Int]) {
        (slices.map(\.kind.rawValue), slices.map(\.scope), slices.map(\.window), slices.map(\.allowance), slices.map(\.amount))
    }
}

extension PostgresDatabase {
    /// The minute limits' shared allowances.
    public var allowanceLeases: PostgresAllowanceLeaseRepository { PostgresAllowanceLeaseRepository(client: client) }
}
