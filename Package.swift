// swift-tools-version:6.1
import PackageDescription

// One settings array for every target: Swift 6 language mode (the default for tools 6.x) plus the
// upcoming features the style guide asks for.
let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "tollgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tollgate", targets: ["tollgate"]),
        .library(name: "TollgateServer", targets: ["TollgateServer"]),
        // For the benchmark package in bench/, which measures the store directly.
        .library(name: "TollgateStore", targets: ["TollgateStore"]),
        .library(name: "TollgateCore", targets: ["TollgateCore"]),
        // For the chargeback benchmark in bench/, which times the report in process.
        .library(name: "TollgateReports", targets: ["TollgateReports"]),
        // For the tokenizer throughput benchmark in bench/, and for anyone who needs tiktoken-exact counts.
        .library(name: "TollgateTokenizer", targets: ["TollgateTokenizer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
    ],
    targets: [
        // Pure domain: money, periods, prices, usage, budget math. Foundation only; keep it that way.
        .target(name: "TollgateCore", swiftSettings: settings),
        // tiktoken-exact BPE for o200k_base and cl100k_base, and OpenAI's chat/tools/image prompt-token rules.
        // Standard library and Foundation only; the vocabularies ship as resources (provenance in Resources/README.md).
        .target(
            name: "TollgateTokenizer",
            exclude: ["Resources/README.md"],
            resources: [.copy("Resources/o200k_base.tiktoken"), .copy("Resources/cl100k_base.tiktoken")],
            swiftSettings: settings
        ),
        // PostgreSQL: migrations, repositories, the embedded cluster.
        .target(
            name: "TollgateStore",
            dependencies: [
                "TollgateCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The target spans the package root so that the top-level `sql/` folder ships inside the binary's bundle.
            path: ".",
            exclude: [
                "Sources/TollgateCore", "Sources/TollgateTokenizer", "Sources/TollgateGateway", "Sources/TollgateRules", "Sources/TollgateReports", "Sources/TollgateServer",
                "Sources/tollgate", "Tests", "examples", "docs", "bench", "dashboards", "scripts", "README.md", "deploy", "Containerfile",
            ],
            sources: ["Sources/TollgateStore"],
            resources: [.copy("sql"), .copy("prices")],
            swiftSettings: settings
        ),
        // The metering proxy: key auth, upstream forwarding, usage capture, the usage writer and spool.
        .target(
            name: "TollgateGateway",
            dependencies: [
                "TollgateCore", "TollgateStore", "TollgateTokenizer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        // Budgets, webhooks, management-API adapters.
        .target(
            name: "TollgateRules",
            dependencies: [
                "TollgateCore", "TollgateStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        // Chargeback exports: CSV, JSON, FOCUS.
        .target(
            name: "TollgateReports",
            dependencies: [
                "TollgateCore", "TollgateStore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
        // Composition root: configuration, buildApplication, admin API.
        .target(
            name: "TollgateServer",
            dependencies: [
                "TollgateCore", "TollgateStore", "TollgateGateway", "TollgateRules", "TollgateReports",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "tollgate",
            dependencies: [
                "TollgateServer", "TollgateCore", "TollgateStore", "TollgateReports", "TollgateTokenizer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        // Shared test support: the throwaway PostgreSQL cluster, template databases, a fake OpenAI upstream.
        .target(
            name: "TollgateTestSupport",
            dependencies: [
                "TollgateServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Tests/TollgateTestSupport",
            swiftSettings: settings
        ),
        // In-memory implementations of the Store's repository protocols: DB-free tests of rules, routes and pipeline steps.
        // Depends on Store alone, so a fake can only implement what the real repositories promise.
        .target(
            name: "TollgateStoreMemory",
            dependencies: ["TollgateCore", "TollgateStore"],
            path: "Tests/TollgateStoreMemory",
            swiftSettings: settings
        ),
        .testTarget(name: "TollgateCoreTests", dependencies: ["TollgateCore"], swiftSettings: settings),
        .testTarget(
            name: "TollgateTokenizerTests",
            dependencies: ["TollgateTokenizer", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Fixtures/make_corpus.py"],
            resources: [.copy("Fixtures/parity-corpus.json.gz")],
            swiftSettings: settings
        ),
        .testTarget(name: "TollgateStoreTests", dependencies: ["TollgateStore", "TollgateStoreMemory", "TollgateTestSupport"], swiftSettings: settings),
        .testTarget(
            name: "TollgateGatewayTests",
            dependencies: [
                "TollgateGateway", "TollgateServer", "TollgateTestSupport", "TollgateStore", "TollgateStoreMemory",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "TollgateReportsTests",
            dependencies: [
                "TollgateReports", "TollgateStore", "TollgateTestSupport", "TollgateStoreMemory",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "TollgateRulesTests",
            dependencies: [
                "TollgateRules", "TollgateStore", "TollgateCore", "TollgateServer", "TollgateTestSupport", "TollgateStoreMemory",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "TollgateServerTests",
            dependencies: [
                "TollgateServer", "TollgateTestSupport", "TollgateStore", "TollgateStoreMemory", "TollgateRules", "TollgateGateway",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: settings
        ),
    ]
)
