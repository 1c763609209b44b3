// swift-tools-version:6.1
// package-benchmark suites, kept apart from the main package so `swift test` never builds them.
//   cd Benchmarks && swift package benchmark
import PackageDescription

let package = Package(
    name: "gateway-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "llm-metering-gateway", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "TokenizerBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Metering", package: "llm-metering-gateway"),
            ],
            path: "Benchmarks/TokenizerBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "LedgerBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Metering", package: "llm-metering-gateway"),
                .product(name: "Gateway", package: "llm-metering-gateway"),
            ],
            path: "Benchmarks/LedgerBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Not a package-benchmark suite: the stack-only forwarder that `../Benchmarks/proxy-wrk.sh` runs
        // beside the gateway (see its doc comment).
        .executableTarget(
            name: "BareForwarder",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/BareForwarder"
        ),
        .executableTarget(
            name: "NIOForwarder",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/NIOForwarder"
        ),
    ],
    swiftLanguageModes: [.v6]
)
