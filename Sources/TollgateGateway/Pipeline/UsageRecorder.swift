import TollgateCore

/// Where the meter step hands a usage row: `UsageWriter` in the server (spooled to disk at once, loaded in batches);
/// tests record in memory.
protocol UsageRecorder: Sendable {
    /// Takes the row without waiting (on the event loop); it must not be lost once this returns.
    func record(_ event: UsageEvent)
}

extension UsageWriter: UsageRecorder {}
