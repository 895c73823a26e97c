import Foundation
import Logging
import NIOCore
import Synchronization
import TollgateCore
import TollgateStore

/// The ledger in memory: COPY lines kept by request id, the first line of an id winning. Rollups and pricing are
/// PostgreSQL's job and are tested there; this is what a test of the usage writer needs.
public final class InMemoryUsageEvents: UsageEventRepository {
    private let lines = Mutex<[UUID: String]>([:])
    /// When set, `insert` throws it (a database that is down).
    public let failure = Mutex<(any Error)?>(nil)

    public init() {}

    public func insert(copyText chunks: [ByteBuffer], logger: Logger) async throws -> Int {
        if let failure = failure.withLock({ $0 }) { throw failure }
        let text = chunks.map { String(buffer: $0) }.joined()
        var batch: [(UUID, String)] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let field = line.split(separator: "\t", maxSplits: 1).first, let id = UUID(uuidString: String(field)) else {
                throw InMemoryUsageEventsError.notACopyLine(String(line.prefix(80)))
            }
            batch.append((id, String(line)))
        }
        return lines.withLock { stored in
            var new = 0
            for (id, line) in batch where stored[id] == nil {
                stored[id] = line
                new += 1
            }
            return new
        }
    }

    /// The stored lines, by request id.
    public var stored: [UUID: String] { lines.withLock { $0 } }
}

public enum InMemoryUsageEventsError: Error, Equatable {
    /// The line does not start with a request id, as a COPY line of `usage_events` does.
    case notACopyLine(String)
}
