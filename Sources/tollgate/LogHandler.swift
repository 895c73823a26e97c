import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Log lines in swift-log's stream format (`2026-11-25T18:51:31+0000 info tollgate: key=value [source] message`) on
/// standard output, with the metadata rendered when a line is written. swift-log's own `StreamLogHandler` renders
/// its metadata every time a key is set, and HTTP servers set a request id on every request: work on the hot path for
/// lines that are almost never written (bench/README.md has the figure).
struct TollgateLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    private static let output = Mutex(())
    /// Standard output for `serve` (a service's log stream); standard error for every other command, whose standard
    /// output is its result (a key, a CSV) and must not carry log lines.
    let fileDescriptor: Int32

    init(label: String, fileDescriptor: Int32 = STDOUT_FILENO, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.fileDescriptor = fileDescriptor
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let (level, message, explicit, source) = (event.level, event.message, event.metadata, event.source)
        var all = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { all.merge(provided) { $1 } }
        if let explicit, !explicit.isEmpty { all.merge(explicit) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        var text = "\(Self.timestamp()) \(level) \(label):"
        for (key, value) in all.sorted(by: { $0.key < $1.key }) { text += " \(key)=\(value)" }
        text += " [\(source)] \(message)\n"
        Self.output.withLock { _ in
            text.withUTF8 { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { return }  // nowhere to report a failed log write
                    offset += written
                }
            }
        }
    }

    private static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
