import Synchronization

/// Upstream URLs split once: a gateway calls the same few URLs over and over.
final class UpstreamTargetCache: Sendable {
    private let targets = Mutex<[String: UpstreamTarget]>([:])

    func target(for url: String) -> UpstreamTarget? {
        if let known = targets.withLock({ $0[url] }) { return known }
        guard let parsed = UpstreamTarget(url: url) else { return nil }
        targets.withLock { targets in
            if targets.count >= 1_024 { targets.removeAll() }  // Azure api-versions come from clients: keep it bounded
            targets[url] = parsed
        }
        return parsed
    }
}
