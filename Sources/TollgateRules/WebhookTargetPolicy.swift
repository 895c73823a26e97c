import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What kind of network an address belongs to, for the SSRF guard.
public enum AddressCategory: String, Hashable, Sendable {
    case global
    case loopback
    /// RFC 1918, carrier-grade NAT (100.64/10), IPv6 unique-local (fc00::/7).
    case privateNetwork = "private"
    /// 169.254/16 (cloud metadata services live here), fe80::/10.
    case linkLocal = "link_local"
    /// 0.0.0.0/8 and `::`: Linux connects them to the local host.
    case unspecified
    case multicast
    /// 240/4, broadcast, and other addresses no webhook receiver has.
    case reserved

    /// Classifies raw address bytes: 4 for IPv4, 16 for IPv6. IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible and
    /// NAT64 (`64:ff9b::/96`) IPv6 addresses are classified by the IPv4 address inside them.
    public static func of(_ bytes: [UInt8]) -> AddressCategory {
        if bytes.count == 4 { return ipv4(bytes) }
        guard bytes.count == 16 else { return .reserved }
        let firstTenZero = bytes[0..<10].allSatisfy { $0 == 0 }
        if firstTenZero && bytes[10] == 0xff && bytes[11] == 0xff { return ipv4(Array(bytes[12..<16])) }
        if bytes[0..<12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] { return ipv4(Array(bytes[12..<16])) }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) {
            return bytes[15] == 1 ? .loopback : (bytes[15] == 0 ? .unspecified : .reserved)
        }
        if firstTenZero && bytes[10] == 0 && bytes[11] == 0 { return ipv4(Array(bytes[12..<16])) }  // ::a.b.c.d (deprecated)
        if bytes[0] == 0xff { return .multicast }
        if bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80 { return .linkLocal }
        if (bytes[0] & 0xfe) == 0xfc { return .privateNetwork }
        if bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0xc0 { return .privateNetwork }  // site-local, deprecated
        return .global
    }

    private static func ipv4(_ b: [UInt8]) -> AddressCategory {
        switch (b[0], b[1]) {
        case (0, _): return .unspecified
        case (127, _): return .loopback
        case (10, _), (192, 168): return .privateNetwork
        case (172, 16...31): return .privateNetwork
        case (100, 64...127): return .privateNetwork
        case (169, 254): return .linkLocal
        case (224...239, _): return .multicast
        case (240...255, _): return .reserved
        default: return .global
        }
    }
}

/// Which webhook targets may be called. By default only public addresses over http(s): a budget webhook must not be a
/// way to reach the database, the cloud metadata service or anything else inside the network.
public struct WebhookTargetPolicy: Sendable, Hashable {
    /// Allow 127.0.0.0/8 and ::1 (tests, a receiver on the same host).
    public var allowLoopback: Bool
    /// Allow RFC 1918, CGNAT and unique-local IPv6 (a receiver inside the company network).
    public var allowPrivateNetworks: Bool
    /// Allow link-local addresses. Rarely right: 169.254.169.254 is the cloud metadata service.
    public var allowLinkLocal: Bool

    public init(allowLoopback: Bool = false, allowPrivateNetworks: Bool = false, allowLinkLocal: Bool = false) {
        self.allowLoopback = allowLoopback
        self.allowPrivateNetworks = allowPrivateNetworks
        self.allowLinkLocal = allowLinkLocal
    }

    public static let publicOnly = WebhookTargetPolicy()

    public func allows(_ category: AddressCategory) -> Bool {
        switch category {
        case .global: true
        case .loopback: allowLoopback
        case .privateNetwork: allowPrivateNetworks
        case .linkLocal: allowLinkLocal
        case .unspecified, .multicast, .reserved: false
        }
    }

    /// Resolves the URL's host and refuses it unless every address it resolves to is allowed (a name that resolves to
    /// one public and one private address is refused, so DNS cannot pick the private one later).
    ///
    /// The HTTP client resolves the name again when it connects; a resolver that answers differently the second time
    /// (DNS rebinding) is not caught here. Receivers on fixed public addresses, or `allowPrivateNetworks` off plus an
    /// egress firewall, close that gap.
    public func check(_ url: String) async throws(WebhookTargetRefused) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let host = components.host, !host.isEmpty
        else { throw .invalidURL }
        let addresses: [[UInt8]]
        do {
            addresses = try await Self.resolve(host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")))
        } catch {
            throw .unresolvable(host: host)
        }
        guard !addresses.isEmpty else { throw .unresolvable(host: host) }
        for address in addresses {
            let category = AddressCategory.of(address)
            if !allows(category) { throw .notAllowed(host: host, category: category) }
        }
    }

    /// getaddrinfo on NIO's blocking-IO thread pool, so no cooperative thread waits on DNS.
    static func resolve(_ host: String) async throws -> [[UInt8]] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            #if canImport(Glibc)
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            #else
                hints.ai_socktype = SOCK_STREAM
            #endif
            var result: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, nil, &hints, &result)
            guard status == 0, let first = result else { throw WebhookTargetRefused.unresolvable(host: host) }
            defer { freeaddrinfo(first) }
            var addresses: [[UInt8]] = []
            var cursor: UnsafeMutablePointer<addrinfo>? = first
            while let entry = cursor {
                if let sockaddr = entry.pointee.ai_addr {
                    switch Int32(entry.pointee.ai_family) {
                    case AF_INET:
                        sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                            var address = v4.pointee.sin_addr
                            addresses.append(withUnsafeBytes(of: &address) { Array($0) })
                        }
                    case AF_INET6:
                        sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                            var address = v6.pointee.sin6_addr
                            addresses.append(withUnsafeBytes(of: &address) { Array($0) })
                        }
                    default: break
                    }
                }
                cursor = entry.pointee.ai_next
            }
            return addresses
        }
    }
}

public enum WebhookTargetRefused: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidURL
    case unresolvable(host: String)
    case notAllowed(host: String, category: AddressCategory)

    public var description: String {
        switch self {
        case .invalidURL: "webhook URL must be http(s) with a host"
        case .unresolvable(let host): "webhook host \(host) does not resolve"
        case .notAllowed(let host, let category):
            "webhook host \(host) resolves to a \(category.rawValue) address, which the configuration does not allow"
        }
    }
}
