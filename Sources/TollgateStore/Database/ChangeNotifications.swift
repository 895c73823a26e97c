import Foundation
import Logging
import PostgresNIO

/// Tells this process when another one (or this one) changed something in the shared database.
///
/// Delivery is a hint: a notification can be lost while a connection is down, so `watch` also calls `onChange` each time it
/// (re)starts listening, and every consumer keeps a periodic re-read as its safety net.
public protocol ChangeNotifications: Sendable {
    /// Calls `onChange` once when listening on `channel` has begun and then once per notification, reconnecting on its own,
    /// until the task is cancelled.
    func watch(_ channel: NotificationChannel, onChange: @escaping @Sendable () async -> Void) async
}

/// `ChangeNotifications` over PostgreSQL LISTEN, one dedicated connection per watched channel (a LISTEN needs a session
/// of its own; a pooled connection would be handed to other work).
public struct PostgresChangeNotifications: ChangeNotifications {
    let location: DatabaseLocation
    let logger: Logger

    public func watch(_ channel: NotificationChannel, onChange: @escaping @Sendable () async -> Void) async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(configuration: location.connectionConfiguration(), id: 1, logger: logger)
                do {
                    try await connection.listen(on: channel.name) { notifications in
                        attempt = 0
                        await onChange()  // whatever changed while nobody listened
                        for try await _ in notifications { await onChange() }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled { return }
                attempt += 1
                logger.debug("Change listener reconnecting", metadata: ["channel": "\(channel.name)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(5_000, 200 * attempt)))
            }
        }
    }
}
