import Foundation
import TollgateCore
import TollgateTokenizer

/// The OpenAI operations the gateway meters. The raw value is what usage rows call the route.
public enum OpenAIOperation: String, Sendable, CaseIterable {
    case chatCompletions = "chat.completions"
    case completions = "completions"
    case embeddings = "embeddings"
    case responses = "responses"

    /// The path below `/v1` (OpenAI) or below `/openai/deployments/{deployment}` (Azure).
    var pathSuffix: String {
        switch self {
        case .chatCompletions: "chat/completions"
        case .completions: "completions"
        case .embeddings: "embeddings"
        case .responses: "responses"
        }
    }

    /// Whether a streamed reply carries usage only when asked with `stream_options.include_usage`.
    var needsIncludeUsage: Bool { self == .chatCompletions || self == .completions }
}

/// Reads token usage out of OpenAI-shaped JSON. Chat, completions and embeddings use
/// `prompt_tokens`/`completion_tokens`; the Responses API uses `input_tokens`/`output_tokens`.
enum UsageExtraction {
    static func usage(from object: JSONObjectReader) -> TokenUsage? {
        object.object("usage").flatMap(tokenUsage)
    }

    static func tokenUsage(_ usage: JSONObjectReader) -> TokenUsage? {
        guard let prompt = usage.int("prompt_tokens") ?? usage.int("input_tokens") else { return nil }
        let completion = usage.int("completion_tokens") ?? usage.int("output_tokens") ?? 0
        let promptDetails = usage.object("prompt_tokens_details") ?? usage.object("input_tokens_details")
        let completionDetails = usage.object("completion_tokens_details") ?? usage.object("output_tokens_details")
        return TokenUsage(
            promptTokens: prompt, completionTokens: completion, totalTokens: usage.int("total_tokens") ?? prompt + completion,
            cachedPromptTokens: promptDetails?.int("cached_tokens") ?? 0, reasoningTokens: completionDetails?.int("reasoning_tokens") ?? 0)
    }

    /// The prompt tokens of a request body, counted with the model's tokenizer (`PromptTokenCounter`: OpenAI's chat,
    /// tools and image rules); parsed only now, since it is needed only when an upstream reports no usage. A body
    /// that is not JSON falls back to `characterEstimate`.
    static func estimatedPromptTokens(requestBody: [UInt8], model: String) -> Int {
        if let counted = PromptTokenCounter.promptTokensIfLoaded(body: Data(requestBody), model: model) { return counted }
        return max(1, (requestBody.count + 3) / 4)
    }

    /// The tokens of streamed text, counted with the model's tokenizer.
    static func tokens(of text: String, model: String) -> Int? {
        Tokenizer.loaded(forModel: model)?.count(text)
    }

    /// A rough prompt size, about four characters a token over the text the request carries: what the mock backend
    /// reports (it needs plausible figures, not exact ones, and no vocabulary).
    static func characterEstimate(request: [String: Any]) -> Int {
        var characters = 0
        func visit(_ value: Any) {
            switch value {
            case let text as String: characters += text.count
            case let list as [Any]: list.forEach(visit)
            case let map as [String: Any]:
                for (key, inner) in map where key == "content" || key == "text" || key == "input" || key == "prompt" || key == "messages" {
                    visit(inner)
                }
            default: break
            }
        }
        for key in ["messages", "prompt", "input"] { if let value = request[key] { visit(value) } }
        return max(1, (characters + 3) / 4)
    }
}

/// Watches a server-sent-event stream as it passes, event by event: finds the usage, hides the usage-only chunk the
/// gateway asked for on the client's behalf, and counts content chunks for an estimate if no usage ever comes.
struct SSEStreamMeter {
    let operation: OpenAIOperation
    /// The gateway added `stream_options.include_usage`: strip what the client would not otherwise have seen.
    let hideInjectedUsage: Bool
    private var pending: [UInt8] = []
    private(set) var usage: TokenUsage?
    private(set) var model: String?
    private(set) var responseID: String?
    /// Events that carried generated content.
    private(set) var contentEvents = 0
    /// The generated text that passed, still JSON-escaped as the chunks carried it (decoded only if it is counted).
    private var generatedText: [UInt8] = []
    private(set) var sawDone = false

    init(operation: OpenAIOperation, hideInjectedUsage: Bool) {
        self.operation = operation
        self.hideInjectedUsage = hideInjectedUsage
    }

    /// Takes the next bytes from the upstream and returns what to pass to the client: whole events only, so an event
    /// is never split between what is forwarded and what is held back.
    mutating func consume(_ bytes: some Collection<UInt8>) -> [UInt8] {
        pending.append(contentsOf: bytes)
        var output: [UInt8] = []
        var start = 0
        var i = 0
        while i + 1 < pending.count {
            // Events end at a blank line: "\n\n" (or "\r\n\r\n", whose last two bytes are "\r\n" after "\n").
            if pending[i] == 0x0A && (pending[i + 1] == 0x0A || (pending[i + 1] == 0x0D && i + 2 < pending.count && pending[i + 2] == 0x0A)) {
                let end = pending[i + 1] == 0x0A ? i + 2 : i + 3
                output.append(contentsOf: process(Array(pending[start..<end])))
                start = end
                i = end
                continue
            }
            i += 1
        }
        if start > 0 { pending.removeFirst(start) }
        return output
    }

    /// Whatever is left when the upstream closes (a last event without its blank line).
    mutating func finish() -> [UInt8] {
        guard !pending.isEmpty else { return [] }
        let rest = pending
        pending = []
        return process(rest)
    }

    private mutating func process(_ event: [UInt8]) -> [UInt8] {
        guard let data = Self.dataPayload(of: event) else { return event }
        if data == Array("[DONE]".utf8) {
            sawDone = true
            return event
        }
        let text = String(decoding: data, as: UTF8.self)
        if model == nil || responseID == nil || text.contains("\"usage\"") || operation == .responses {
            if let object = JSONObjectReader(document: data) {
                inspect(object)
                if hideInjectedUsage, object.member("usage")?.kind == .object, object.isEmptyArray("choices") ?? true {
                    return []  // the usage-only chunk the client did not ask for
                }
            }
        }
        if Self.appendGeneratedText(of: text, operation: operation, to: &generatedText) { contentEvents += 1 }
        if hideInjectedUsage && text.contains("\"usage\":null") {
            // With include_usage set, every chunk carries `"usage":null`; without it the client would see no such field.
            let stripped = text.replacingOccurrences(of: ",\"usage\":null", with: "").replacingOccurrences(of: "\"usage\":null,", with: "")
            return Self.replacingData(in: event, with: Array(stripped.utf8))
        }
        return event
    }

    private mutating func inspect(_ object: JSONObjectReader) {
        switch operation {
        case .responses:
            // `response.created` … `response.completed`; the response object sits under "response".
            if let response = object.object("response") {
                if responseID == nil { responseID = response.string("id") }
                if let m = response.string("model") { model = m }
                if let u = UsageExtraction.usage(from: response) { usage = u }
            }
        default:
            if responseID == nil { responseID = object.string("id") }
            if model == nil { model = object.string("model") }
            if let u = UsageExtraction.usage(from: object) { usage = u }
        }
    }

    /// The text generated so far (the streamed deltas, in order), decoded from the chunks' JSON strings.
    var generated: String {
        let quoted = [UInt8(ascii: "\"")] + generatedText + [UInt8(ascii: "\"")]
        return ((try? JSONSerialization.jsonObject(with: Data(quoted), options: .fragmentsAllowed)) as? String) ?? ""
    }

    /// The fields whose string values are generated text in a chunk of each operation's stream: chat deltas' content,
    /// refusal and tool-call arguments; completions' text; the Responses API's `response.*.delta` events. (Responses'
    /// `*.done` and `response.completed` events repeat the whole text under other names, so they are not read.)
    private static func generatedFields(_ operation: OpenAIOperation) -> [String] {
        switch operation {
        case .chatCompletions: ["\"content\":\"", "\"refusal\":\"", "\"arguments\":\""]
        case .completions: ["\"text\":\""]
        case .responses: ["\"delta\":\""]
        case .embeddings: []
        }
    }

    /// Appends the raw (still escaped) string values of a chunk's generated-text fields to `buffer`; true when the
    /// chunk carried any non-empty one.
    static func appendGeneratedText(of text: String, operation: OpenAIOperation, to buffer: inout [UInt8]) -> Bool {
        var found = false
        let utf8 = text.utf8
        for field in generatedFields(operation) {
            var searchRange = text.startIndex..<text.endIndex
            while let match = text.range(of: field, range: searchRange) {
                // The value runs to the first quote not escaped by a backslash.
                var index = match.upperBound
                var escaped = false
                while index < utf8.endIndex {
                    let byte = utf8[index]
                    if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { break }
                    index = utf8.index(after: index)
                }
                if index > match.upperBound {
                    found = true
                    buffer.append(contentsOf: utf8[match.upperBound..<index])
                }
                searchRange = index..<text.endIndex
            }
        }
        return found
    }

    /// The concatenated `data:` lines of one event, or nil if it has none (comments, `event:`-only, keep-alives).
    static func dataPayload(of event: [UInt8]) -> [UInt8]? {
        var payload: [UInt8] = []
        var found = false
        for line in event.split(separator: 0x0A, omittingEmptySubsequences: true) {
            var line = Array(line)
            if line.last == 0x0D { line.removeLast() }
            guard line.starts(with: Array("data:".utf8)) else { continue }
            var value = line.dropFirst(5)
            if value.first == 0x20 { value = value.dropFirst() }
            if found { payload.append(0x0A) }
            payload.append(contentsOf: value)
            found = true
        }
        return found ? payload : nil
    }

    private static func replacingData(in event: [UInt8], with data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var replaced = false
        for line in event.split(separator: 0x0A, omittingEmptySubsequences: false) {
            if line.starts(with: Array("data:".utf8)) {
                if !replaced { out.append(contentsOf: Array("data: ".utf8) + data + [0x0A]) }
                replaced = true
            } else if !line.isEmpty {
                out.append(contentsOf: line)
                out.append(0x0A)
            }
        }
        out.append(0x0A)
        return out
    }
}

/// Loads the tokenizers' vocabularies off the request path, on a thread of its own: a load takes a noticeable time
/// (most in a debug build), and must hold neither an event loop nor one of Swift concurrency's few threads. The request
/// path never waits for a vocabulary (`Tokenizer.loaded(forModel:)`); start-up waits for this instead, so that the
/// first estimate is already counted with the tokenizer.
public enum TokenizerWarmUp {
    /// Starts loading every shipped encoding and returns at once; the task's `value` is there once the load is done
    /// (the task waits without holding a thread). A vocabulary that cannot load leaves estimates on their size-based
    /// figure (and is reported by `tollgate tokens`).
    public static func start() -> Task<Void, Never> {
        Task {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let thread = Thread {
                    for encoding in TokenEncoding.allCases { _ = try? Tokenizer.forEncoding(encoding) }
                    continuation.resume()
                }
                thread.name = "tollgate-tokenizer-load"
                thread.start()
            }
        }
    }
}
