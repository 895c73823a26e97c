import Logging
import NIOCore

/// Where usage events land: the usage writer's one dependency on the store. Events travel as COPY text lines
/// (`UsageStore.copyLine(for:)`, the spool's format). Every implementation lands a request id at most once, whatever
/// batch or month it comes in: a replayed batch, or a line repeated in one (the first wins), adds nothing.
/// `UsageStore` is the PostgreSQL implementation.
public protocol UsageEventRepository: Sendable {
    /// Lands the lines whose request id is not stored yet, in one transaction.
    /// - Returns: how many rows were new.
    func insert(copyText chunks: [ByteBuffer], logger: Logger) async throws -> Int
}

extension UsageStore: UsageEventRepository {}
