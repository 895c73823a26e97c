// Tokenizer throughput, single thread: `Tokenizer.encode` of the whole benchmark text (../../tokenizer/make_text.py:
// prose, code and JSON) per iteration, for both encodings. ../../run-tokenizer.sh runs tiktoken on the same text and
// writes the comparison. See ../../README.md.

import Benchmark
import Foundation
import TollgateTokenizer

let benchmarks: @Sendable () -> Void = {
    let environment = ProcessInfo.processInfo.environment
    let samples = Int(environment["TOLLGATE_BENCH_SAMPLES"] ?? "") ?? 10
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 1,
        maxDuration: .seconds(120),
        maxIterations: samples
    )
    guard let path = environment["TOLLGATE_BENCH_TEXT"], let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        fatalError("TOLLGATE_BENCH_TEXT must name the benchmark text (bench/run-tokenizer.sh makes it)")
    }
    let summary = environment["TOLLGATE_BENCH_SUMMARY"]
    // The first use of an encoding loads it (vocabulary parse, rank table, and for the first one the Unicode class
    // table): what a process pays once, before its first count.
    let clock = ContinuousClock()
    for encoding in TokenEncoding.allCases {
        let started = clock.now
        _ = try? Tokenizer.forEncoding(encoding)
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if let summary { append("load\t\(encoding.rawValue)\t\(seconds)\n", to: summary) }
    }
    for encoding in TokenEncoding.allCases {
        Benchmark("Tokenizer.encode, \(encoding.rawValue), \(text.utf8.count) bytes") { benchmark in
            let tokenizer = try Tokenizer.forEncoding(encoding)
            let clock = ContinuousClock()
            for _ in benchmark.scaledIterations {
                let started = clock.now
                let tokens = tokenizer.encode(text)
                let elapsed = clock.now - started
                blackHole(tokens)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                if let summary { append("\(encoding.rawValue)\t\(text.utf8.count)\t\(tokens.count)\t\(seconds)\n", to: summary) }
            }
        }
    }
}

/// One TSV line per iteration for the script's summary (package-benchmark's own table has no MB/s).
func append(_ line: String, to path: String) {
    if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
    guard let handle = FileHandle(forWritingAtPath: path) else { return }
    handle.seekToEndOfFile()
    handle.write(Data(line.utf8))
    try? handle.close()
}
