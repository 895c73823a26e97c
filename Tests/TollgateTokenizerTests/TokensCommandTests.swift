import Foundation
import Testing

/// `tollgate tokens count|encode` end to end: the binary `swift build` put next to this test bundle, fed on stdin.
struct TokensCommandTests {
    /// The build products directory holds both the test bundle's resources and the `tollgate` executable.
    static let binary = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("tollgate")

    static func run(_ arguments: [String], stdin: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary.path), "the tollgate executable is built"))
    func countAndEncodeText() throws {
        #expect(try Self.run(["tokens", "count", "--model", "gpt-4"], stdin: "tiktoken is great!") == (0, "6\n"))
        #expect(try Self.run(["tokens", "encode", "--model", "gpt-4"], stdin: "tiktoken is great!") == (0, "83 1609 5963 374 2294 0\n"))
        #expect(try Self.run(["tokens", "encode", "--model", "gpt-4o", "--json"], stdin: "tiktoken is great!") == (0, "[83,8251,2488,382,2212,0]\n"))
        #expect(try Self.run(["tokens", "encode", "--encoding", "cl100k_base"], stdin: "hello world") == (0, "15339 1917\n"))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary.path), "the tollgate executable is built"))
    func countAChatBody() throws {
        let body = #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "What's the weather like in San Francisco?"}]}"#
        // 3 per message + "user" + 8 content tokens + 3 priming (o200k); under cl100k the content is 9 tokens.
        #expect(try Self.run(["tokens", "count"], stdin: body) == (0, "15\n"))
        #expect(try Self.run(["tokens", "count", "--model", "gpt-4"], stdin: body) == (0, "16\n"))
        // As plain text the body is 33 o200k tokens (tiktoken 0.14).
        #expect(try Self.run(["tokens", "count", "--text"], stdin: body) == (0, "33\n"))
        #expect(try Self.run(["tokens", "count", "--encoding", "p50k_base"], stdin: body).status != 0)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary.path), "the tollgate executable is built"))
    func countOtherRequestBodies() throws {
        // tiktoken cl100k_base: "Say hello there!" 4, "Reply briefly." 3; ids count one each.
        #expect(try Self.run(["tokens", "count"], stdin: #"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hello there!"}"#) == (0, "4\n"))
        #expect(try Self.run(["tokens", "count"], stdin: #"{"model":"text-embedding-3-small","input":[[1,2,3],[4]]}"#) == (0, "4\n"))
        let responses = #"{"model":"gpt-4","input":"Say hello there!","instructions":"Reply briefly."}"#
        #expect(try Self.run(["tokens", "count"], stdin: responses) == (0, "10\n"))
    }
}
