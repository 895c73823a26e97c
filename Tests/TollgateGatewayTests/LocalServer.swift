import NIOCore
import NIOPosix

/// Runs a NIO server on 127.0.0.1 (a free port) for the duration of `body`; `setUp` adds each connection's handlers.
func withLocalServer<T: Sendable>(
    setUp: @escaping @Sendable (any Channel) throws -> Void, _ body: @Sendable (_ port: Int) async throws -> T
) async throws -> T {
    let channel = try await ServerBootstrap(group: NIOSingletons.posixEventLoopGroup)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try setUp(channel) } }
        .bind(host: "127.0.0.1", port: 0).get()
    do {
        let result = try await body(channel.localAddress!.port!)
        try await channel.close()
        return result
    } catch {
        try? await channel.close()
        throw error
    }
}
