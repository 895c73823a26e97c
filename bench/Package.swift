// swift-tools-version:6.1
import PackageDescription

// The benchmarks live apart from the product (STYLE.md §10): `swift build` and `swift test` at the root never build them,
// and package-benchmark's dependencies never reach the product's dependency graph.
let package = Package(
    name: "tollgate-bench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "tollgate", path: ".."),
        // Only the malloc interposer trait: the default "RuntimeInterposer" trait pulls swift-runtime-interposer,
        // which is not mirrored here and only adds ARC counters we do not report.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "UsageIngest",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TollgateStore", package: "tollgate"),
                .product(name: "TollgateCore", package: "tollgate"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/UsageIngest",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "Chargeback",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TollgateReports", package: "tollgate"),
                .product(name: "TollgateStore", package: "tollgate"),
                .product(name: "TollgateCore", package: "tollgate"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Chargeback",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "Tokenizer",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TollgateTokenizer", package: "tollgate"),
            ],
            path: "Benchmarks/Tokenizer",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
