import NIOCore
import PostgresNIO

extension UsageStore {
    /// The fast path's rollup statement, from the groups `HourlyRollup` computed. Prepared once per connection: parsing
    /// and planning a statement of this size on every batch is a noticeable part of its execution.
    struct RollUpBatch: PostgresPreparedStatement {
        static let sql = UsageSQL.rollUpBatch
        typealias Row = PostgresRow

        /// How many lines (events) the batch holds.
        let rows: Int
        private let bindings: PostgresBindings

        /// Encodes the statement's parameters: one binary array per column of the groups, written in one pass over them.
        init(_ rollup: HourlyRollup) {
            let groups = rollup.groups
            rows = rollup.rows
            var hours = ArrayParameter(timestamptz: groups.count)
            var keys = (0..<8).map { _ in ArrayParameter(text: groups.count) }
            var sums = (0..<6).map { _ in ArrayParameter(int8: groups.count) }
            for group in groups {
                hours.append(group.hourStart)
                keys[0].append(group.key.subscription)
                keys[1].append(group.key.product)
                keys[2].append(group.key.team)
                keys[3].append(group.key.costCenter)
                keys[4].append(group.key.backend)
                keys[5].append(group.key.deployment)
                keys[6].append(group.key.model)
                keys[7].append(group.key.usageSource)
                sums[0].append(Int64(group.sums.requests))
                sums[1].append(Int64(group.sums.prompt))
                sums[2].append(Int64(group.sums.completion))
                sums[3].append(Int64(group.sums.total))
                sums[4].append(Int64(group.sums.cached))
                sums[5].append(Int64(group.sums.reasoning))
            }
            var bindings = PostgresBindings(capacity: 17)
            bindings.append(hours)
            for column in keys + sums { bindings.append(column) }
            bindings.append(String(rollup.rows))
            var ids = ArrayParameter(uuid: rollup.rows)
            rollup.requestIDs.withUnsafeBufferPointer { all in
                for row in 0..<rollup.rows { ids.append(uuid: UnsafeBufferPointer(rebasing: all[(16 * row)..<(16 * row + 16)])) }
            }
            bindings.append(ids)
            self.bindings = bindings
        }

        func makeBindings() throws -> PostgresBindings { bindings }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }
}
