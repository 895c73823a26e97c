import Foundation
import NIOCore

/// The hourly rollup of a batch of COPY lines, computed from the lines for the fast path.
struct HourlyRollup {
    struct Key: Hashable {
        /// `2026-11-01 13`: the start of the hour, as the line's UTC timestamp begins.
        var hour, subscription, product, team, costCenter, backend, deployment, model, usageSource: String
    }
    struct Sums { var requests = 0, prompt = 0, completion = 0, total = 0, cached = 0, reasoning = 0 }
    struct Group {
        var key: Key
        /// The key's hour in microseconds since 2000-01-01 00:00:00 UTC, as PostgreSQL sends a timestamptz.
        var hourStart: Int64
        var sums = Sums()
    }

    /// How many lines (events) the batch holds.
    private(set) var rows = 0
    private(set) var groups: [Group] = []
    /// The lines' request ids, 16 bytes each, in line order: the fast path checks they are not claimed.
    private(set) var requestIDs: [UInt8] = []
    /// Whether every row is self-located (sql/0410): a UUIDv7 request id minted in the UTC month of its started_at, as
    /// the gateway's are. Only such a batch takes the fast path; the partition's unique index vouches for its ids.
    private(set) var selfLocated = true

    /// Returns nil when a line is not in the form `UsageStore.copyLine(for:)` writes (22 fields, a UTC timestamp with
    /// microseconds, plain non-negative token counts); such a batch takes the general path, where PostgreSQL parses it.
    init?(lines chunks: [ByteBuffer]) {
        let nonEmpty = chunks.filter { $0.readableBytes > 0 }
        let parsed: HourlyRollup?
        if nonEmpty.count == 1 {  // the writer's batches: read in place
            parsed = nonEmpty[0].withUnsafeReadableBytes { Self.parse($0.assumingMemoryBound(to: UInt8.self)) }
        } else {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(nonEmpty.reduce(0) { $0 + $1.readableBytes })
            for chunk in nonEmpty { bytes.append(contentsOf: chunk.readableBytesView) }
            parsed = bytes.withUnsafeBufferPointer { Self.parse($0) }
        }
        guard let parsed else { return nil }
        self = parsed
    }

    private init() {}

    /// One pass over the batch. A line's group is decided by its still-escaped bytes: the hour (the timestamp's first
    /// 13 bytes), the columns subscription_id … model (adjacent in a line) and usage_source; lines are matched to groups
    /// by a hash of those bytes and a byte comparison, so grouping a line allocates nothing.
    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> HourlyRollup? {
        let tab: UInt8 = 0x09, newline: UInt8 = 0x0A, backslash: UInt8 = 0x5C
        guard let base = bytes.baseAddress, bytes.last == newline else { return nil }
        var rollup = HourlyRollup()
        rollup.requestIDs.reserveCapacity(bytes.count / 10)  // a line is far longer than 160 bytes
        // A group's representative line: where its three key parts are in the batch.
        var representatives: [(hour: Int, columns: Range<Int>, source: Range<Int>)] = []
        var byHash: [UInt64: [Int]] = [:]
        var byKey: [Key: Int] = [:]
        var rawToGroup: [Int] = []  // representative index -> group index
        var starts = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &starts) { startsRaw -> HourlyRollup? in
            let starts = startsRaw.bindMemory(to: Int.self)
            func equal(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
                a.count == b.count && memcmp(base + a.lowerBound, base + b.lowerBound, a.count) == 0
            }
            // Eight bytes at a time (a byte-wise hash costs a large share of the parse); lines are matched by comparing bytes, so
            // the hash only has to spread the groups.
            func hash(_ range: Range<Int>, _ seed: UInt64) -> UInt64 {
                var hash = seed ^ UInt64(range.count)
                var i = range.lowerBound
                while i + 8 <= range.upperBound {
                    hash = (hash ^ UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
                    hash ^= hash >> 29
                    i += 8
                }
                var tail: UInt64 = 0
                var shift: UInt64 = 0
                while i < range.upperBound {
                    tail |= UInt64(bytes[i]) << shift
                    shift += 8
                    i += 1
                }
                hash = (hash ^ tail) &* 0x9E37_79B9_7F4A_7C15
                return hash ^ (hash >> 32)
            }
            // `2026-11-01 13` at `time`: microseconds since 2000-01-01 UTC, or nil unless it is a date and an hour of 0…23
            // (PostgreSQL also reads hour 24, as the next day's 0; the general path groups such a line).
            func hourStart(_ time: Int) -> Int64? {
                func number(_ from: Int, _ count: Int) -> Int? {
                    var value = 0
                    for j in from..<(from + count) {
                        let digit = Int(bytes[j]) &- 48
                        guard digit >= 0 && digit <= 9 else { return nil }
                        value = value * 10 + digit
                    }
                    return value
                }
                guard bytes[time + 4] == 0x2D, bytes[time + 7] == 0x2D, bytes[time + 10] == 0x20,
                    let year = number(time, 4), let month = number(time + 5, 2), let day = number(time + 8, 2), let hour = number(time + 11, 2),
                    (1...12).contains(month), (1...31).contains(day), hour <= 23
                else { return nil }
                let days = CivilTime.days(year: year, month: month, day: day)
                return Int64((days - 10_957) * 86_400 + hour * 3_600) * 1_000_000  // 10,957 days from 1970 to 2000
            }
            // Whether the line's id (its 16 bytes at `id` in `requestIDs`) is a UUIDv7 whose millisecond timestamp falls in
            // the UTC month of the started_at at `time` — the test of sql/0410's tollgate_usage_self_located.
            func selfLocated(id: Int, time: Int) -> Bool {
                guard rollup.requestIDs[id + 6] >> 4 == 7 else { return false }
                var milliseconds = 0
                for k in 0..<6 { milliseconds = milliseconds << 8 | Int(rollup.requestIDs[id + k]) }
                let minted = CivilTime(microseconds: milliseconds * 1_000)
                let year = Int(bytes[time] &- 48) * 1000 + Int(bytes[time + 1] &- 48) * 100 + Int(bytes[time + 2] &- 48) * 10 + Int(bytes[time + 3] &- 48)
                let month = Int(bytes[time + 5] &- 48) * 10 + Int(bytes[time + 6] &- 48)
                return minted.year == year && minted.month == month
            }
            var position = 0
            while position < bytes.count {
                var field = 0
                starts[0] = position
                var i = position
                // Eight bytes at a time: the high bit of each tab or newline byte, in address order (little-endian).
                // Exact per byte (no borrow runs into the next byte, so a 0x08 or 0x0B next to a tab is not taken for one).
                func marks(_ word: UInt64) -> UInt64 {
                    func zeroBytes(_ x: UInt64) -> UInt64 {
                        ~(((x & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F) | x | 0x7F7F_7F7F_7F7F_7F7F)
                    }
                    return zeroBytes(word ^ 0x0909_0909_0909_0909) | zeroBytes(word ^ 0x0A0A_0A0A_0A0A_0A0A)
                }
                var lineEnd = -1
                words: while i + 8 <= bytes.count {
                    var found = marks(UInt64(littleEndian: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)))  // byte k of the line is bits 8k…8k+7
                    while found != 0 {
                        let at = i + found.trailingZeroBitCount >> 3
                        if bytes[at] == newline {
                            lineEnd = at
                            break words
                        }
                        field += 1
                        if field > 21 { return nil }
                        starts[field] = at + 1
                        found &= found &- 1
                    }
                    i += 8
                }
                if lineEnd < 0 {  // the batch's last bytes; it ends with a newline
                    while bytes[i] != newline {
                        if bytes[i] == tab {
                            field += 1
                            if field > 21 { return nil }
                            starts[field] = i + 1
                        }
                        i += 1
                    }
                    lineEnd = i
                }
                i = lineEnd
                guard field == 21 else { return nil }
                starts[22] = i + 1
                position = i + 1

                // The request id as copyLine writes it, 8-4-4-4-12 hex digits; any other spelling PostgreSQL reads takes the general path.
                let id = starts[0]
                guard starts[1] - 1 - id == 36 else { return nil }
                var digit = id
                while digit < id + 36 {
                    if digit - id == 8 || digit - id == 13 || digit - id == 18 || digit - id == 23 {
                        guard bytes[digit] == 0x2D else { return nil }
                        digit += 1
                        continue
                    }
                    guard let high = hexValue(bytes[digit]), let low = hexValue(bytes[digit + 1]) else { return nil }
                    rollup.requestIDs.append(high << 4 | low)
                    digit += 2
                }

                // `2026-11-01 13:05:09.123456+00`: exactly what copyLine writes, so the hour is its first 13 bytes.
                let time = starts[2], timeEnd = starts[3] - 1
                guard timeEnd - time == 29, bytes[timeEnd - 3] == 0x2B, bytes[timeEnd - 2] == 0x30, bytes[timeEnd - 1] == 0x30 else { return nil }
                if rollup.selfLocated && !selfLocated(id: rollup.requestIDs.count - 16, time: time) { rollup.selfLocated = false }
                var counts = (0, 0, 0, 0, 0)
                for k in 15...19 {
                    var value = 0
                    let from = starts[k], to = starts[k + 1] - 1
                    guard to > from, to - from <= 10 else { return nil }
                    for j in from..<to {
                        let digit = Int(bytes[j]) &- 48
                        guard digit >= 0 && digit <= 9 else { return nil }
                        value = value * 10 + digit
                    }
                    switch k {
                    case 15: counts.0 = value
                    case 16: counts.1 = value
                    case 17: counts.2 = value
                    case 18: counts.3 = value
                    default: counts.4 = value
                    }
                }

                let hour = time..<(time + 13)
                let columns = starts[4]..<(starts[11] - 1)
                let source = starts[20]..<(starts[21] - 1)
                let hash = hash(source, hash(columns, hash(hour, 0xCBF2_9CE4_8422_2325)))
                var group = -1
                for candidate in byHash[hash] ?? [] {
                    let r = representatives[candidate]
                    if equal(r.hour..<(r.hour + 13), hour) && equal(r.columns, columns) && equal(r.source, source) {
                        group = rawToGroup[candidate]
                        break
                    }
                }
                if group < 0 {
                    func text(_ k: Int) -> String {
                        let value = UnsafeBufferPointer(rebasing: bytes[starts[k]..<(starts[k + 1] - 1)])
                        // NULL and '' are one group, as the rollup's coalesce(…, '') makes them.
                        if value.count == 2 && value[0] == backslash && value[1] == 0x4E { return "" }
                        guard value.contains(backslash) else { return String(decoding: value, as: UTF8.self) }
                        var unescaped: [UInt8] = []
                        var j = 0
                        while j < value.count {
                            if value[j] == backslash, j + 1 < value.count {
                                switch value[j + 1] {
                                case 0x74: unescaped.append(tab)
                                case 0x6E: unescaped.append(newline)
                                case 0x72: unescaped.append(0x0D)
                                default: unescaped.append(value[j + 1])
                                }
                                j += 2
                            } else {
                                unescaped.append(value[j])
                                j += 1
                            }
                        }
                        return String(decoding: unescaped, as: UTF8.self)
                    }
                    let key = Key(
                        hour: String(decoding: UnsafeBufferPointer(rebasing: bytes[hour]), as: UTF8.self), subscription: text(4), product: text(5),
                        team: text(6), costCenter: text(7), backend: text(8), deployment: text(9), model: text(10), usageSource: text(20))
                    if let known = byKey[key] {
                        group = known
                    } else {
                        guard let hourStart = hourStart(time) else { return nil }
                        group = rollup.groups.count
                        rollup.groups.append(Group(key: key, hourStart: hourStart))
                        byKey[key] = group
                    }
                    byHash[hash, default: []].append(representatives.count)
                    representatives.append((time, columns, source))
                    rawToGroup.append(group)
                }
                rollup.groups[group].sums.requests += 1
                rollup.groups[group].sums.prompt += counts.0
                rollup.groups[group].sums.completion += counts.1
                rollup.groups[group].sums.total += counts.2
                rollup.groups[group].sums.cached += counts.3
                rollup.groups[group].sums.reasoning += counts.4
                rollup.rows += 1
            }
            return rollup
        }
    }
}
