import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A durable, append-only queue of usage rows on local disk, in PostgreSQL COPY text format.
///
/// Every metered request is appended (one `write(2)`) before its usage is considered recorded, so a crash of the
/// process loses nothing acknowledged; segments are fsynced when they are sealed. The writer seals the active segment,
/// loads sealed segments into PostgreSQL, and deletes each only after its transaction committed. If PostgreSQL is down,
/// segments simply accumulate and are loaded, in order, when it returns; replays are harmless (idempotent by request id).
public final class UsageSpool: Sendable {
    public let directory: URL
    private struct Active {
        var descriptor: Int32
        var path: String
        var sequence: UInt64
        var lines: Int
    }
    private let active: Mutex<Active>
    private let lockDescriptor: Int32

    /// Opens (creating if needed) the spool in `directory` and takes an exclusive lock on it: two processes must
    /// never share one spool.
    public init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let lockPath = directory.appendingPathComponent(".lock").path
        let lock = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw UsageSpoolError.cannotOpen(lockPath, errno) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            close(lock)
            throw UsageSpoolError.inUse(directory.path)
        }
        lockDescriptor = lock
        let existing = try Self.segments(in: directory)
        let next = (existing.last.flatMap { Self.sequence(of: $0) } ?? 0) + 1
        active = Mutex(try Self.openSegment(in: directory, sequence: next))
    }

    deinit {
        _ = active.withLock { close($0.descriptor) }
        close(lockDescriptor)
    }

    /// Appends complete lines. Throws only when the disk refuses the write.
    public func append(_ text: String) throws {
        var text = text
        try text.withUTF8 { bytes in
            try active.withLock { segment in
                var offset = 0
                while offset < bytes.count {
                    let written = write(segment.descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw UsageSpoolError.writeFailed(segment.path, errno)
                    }
                    offset += written
                }
                segment.lines += 1
            }
        }
    }

    /// Rows appended to the active segment since it was opened.
    public var activeLines: Int { active.withLock { $0.lines } }

    /// Seals the active segment (fsync, close) if it holds anything and opens a new one.
    /// - Returns: every sealed segment waiting to be loaded, oldest first.
    public func seal() throws -> [URL] {
        try active.withLock { segment in
            guard segment.lines > 0 else { return }
            fsync(segment.descriptor)
            close(segment.descriptor)
            let sealedPath = String(segment.path.dropLast(".open".count))
            rename(segment.path, sealedPath)
            segment = try Self.openSegment(in: directory, sequence: segment.sequence + 1)
        }
        return try Self.segments(in: directory)
    }

    /// Sealed segments, oldest first. A segment left `.open` by a crash is sealed here too: its complete lines are kept.
    static func segments(in directory: URL) throws -> [URL] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        return names.filter { $0.hasPrefix("usage-") && $0.hasSuffix(".copy") }.sorted().map { directory.appendingPathComponent($0) }
    }

    static func sequence(of url: URL) -> UInt64? {
        let name = url.deletingPathExtension().lastPathComponent
        return UInt64(name.dropFirst("usage-".count))
    }

    private static func openSegment(in directory: URL, sequence: UInt64) throws -> Active {
        // A segment a crashed process left open: keep its complete lines, seal it under its own name.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] where name.hasSuffix(".copy.open") {
            let path = directory.appendingPathComponent(name).path
            try? truncateToLastNewline(path)
            rename(path, String(path.dropLast(".open".count)))
        }
        let path = directory.appendingPathComponent(String(format: "usage-%020llu.copy.open", sequence)).path
        let descriptor = open(path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw UsageSpoolError.cannotOpen(path, errno) }
        return Active(descriptor: descriptor, path: path, sequence: sequence, lines: 0)
    }

    /// A write cut short by a crash leaves a partial last line; COPY would reject the whole segment for it.
    private static func truncateToLastNewline(_ path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let last = data.lastIndex(of: UInt8(ascii: "\n")) else {
            truncate(path, 0)
            return
        }
        if last + 1 < data.count { truncate(path, off_t(last + 1)) }
    }
}

public enum UsageSpoolError: Error, CustomStringConvertible {
    case cannotOpen(String, Int32)
    case writeFailed(String, Int32)
    case inUse(String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let code): "cannot open usage spool file \(path): \(String(cString: strerror(code)))"
        case .writeFailed(let path, let code): "cannot write usage spool file \(path): \(String(cString: strerror(code)))"
        case .inUse(let path): "the usage spool \(path) is in use by another tollgate process; give each instance its own --data-dir or TOLLGATE_SPOOL_DIR"
        }
    }
}
