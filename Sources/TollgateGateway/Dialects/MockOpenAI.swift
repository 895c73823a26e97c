import Foundation
import TollgateCore

/// Deterministic OpenAI-shaped replies with realistic usage, for the `mock` backend kind: demos, load tests and
/// benchmarks. Every reply says it comes from the mock, so nobody mistakes it for a model.
public enum MockOpenAI {
    public static let replyText = "This is a mock reply from the Tollgate mock backend; no model was called."
    static var replyWords: [String] { replyText.split(separator: " ").map(String.init) }

    /// Tokens the mock charges: the prompt estimate, and one token per word of the reply.
    public static func usage(for operation: OpenAIOperation, request: [String: Any]) -> TokenUsage {
        let prompt = UsageExtraction.characterEstimate(request: request)
        switch operation {
        case .embeddings: return TokenUsage(promptTokens: prompt, completionTokens: 0)
        default: return TokenUsage(promptTokens: prompt, completionTokens: replyWords.count)
        }
    }

    /// A complete (non-streamed) reply body.
    public static func response(for operation: OpenAIOperation, model: String, request: [String: Any], id: String, created: Int) -> [String: Any] {
        let usage = usage(for: operation, request: request)
        switch operation {
        case .chatCompletions:
            return [
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [["index": 0, "message": ["role": "assistant", "content": replyText, "refusal": NSNull()], "logprobs": NSNull(), "finish_reason": "stop"]],
                "usage": chatUsage(usage), "system_fingerprint": "tollgate-mock",
            ]
        case .completions:
            return [
                "id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [["index": 0, "text": replyText, "logprobs": NSNull(), "finish_reason": "stop"]], "usage": chatUsage(usage),
            ]
        case .embeddings:
            let inputs = (request["input"] as? [Any])?.count ?? 1
            return [
                "object": "list", "model": model,
                "data": (0..<inputs).map { ["object": "embedding", "index": $0, "embedding": [0.0125, -0.25, 0.5, 0.0625, -0.125, 0.375, 0.25, -0.5]] as [String: Any] },
                "usage": ["prompt_tokens": usage.promptTokens, "total_tokens": usage.totalTokens],
            ]
        case .responses:
            return responsesObject(id: id, model: model, created: created, usage: usage, status: "completed")
        }
    }

    /// The events of a streamed reply, each a complete SSE event (`data: …\n\n`).
    public static func streamEvents(for operation: OpenAIOperation, model: String, request: [String: Any], id: String, created: Int) -> [String] {
        let usage = usage(for: operation, request: request)
        let includeUsage = ((request["stream_options"] as? [String: Any])?["include_usage"] as? Bool) ?? false
        var events: [String] = []
        func data(_ object: [String: Any]) -> String {
            let json = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
            return "data: \(String(decoding: json, as: UTF8.self))\n\n"
        }
        switch operation {
        case .chatCompletions, .completions:
            let object = operation == .chatCompletions ? "chat.completion.chunk" : "text_completion"
            func chunk(_ choice: [String: Any]) -> [String: Any] {
                var chunk: [String: Any] = ["id": id, "object": object, "created": created, "model": model, "choices": [choice]]
                if includeUsage { chunk["usage"] = NSNull() }
                return chunk
            }
            let isChat = operation == .chatCompletions
            if isChat {
                let role: [String: Any] = ["role": "assistant", "content": ""]
                events.append(data(chunk(["index": 0, "delta": role, "finish_reason": NSNull()])))
            }
            for (i, word) in replyWords.enumerated() {
                let piece = i == 0 ? word : " " + word
                var choice: [String: Any] = ["index": 0, "finish_reason": NSNull()]
                if isChat { choice["delta"] = ["content": piece] } else { choice["text"] = piece }
                events.append(data(chunk(choice)))
            }
            var last: [String: Any] = ["index": 0, "finish_reason": "stop"]
            if isChat { last["delta"] = [String: Any]() } else { last["text"] = "" }
            events.append(data(chunk(last)))
            if includeUsage {
                let usageChunk: [String: Any] = ["id": id, "object": object, "created": created, "model": model, "choices": [Any](), "usage": chatUsage(usage)]
                events.append(data(usageChunk))
            }
            events.append("data: [DONE]\n\n")
        case .responses:
            events.append("event: response.created\n" + data(["type": "response.created", "response": responsesObject(id: id, model: model, created: created, usage: nil, status: "in_progress")]))
            for (i, word) in replyWords.enumerated() {
                events.append("event: response.output_text.delta\n" + data(["type": "response.output_text.delta", "item_id": "msg_\(id)", "output_index": 0, "content_index": 0, "delta": i == 0 ? word : " " + word]))
            }
            events.append("event: response.completed\n" + data(["type": "response.completed", "response": responsesObject(id: id, model: model, created: created, usage: usage, status: "completed")]))
        case .embeddings:
            break
        }
        return events
    }

    static func chatUsage(_ usage: TokenUsage) -> [String: Any] {
        [
            "prompt_tokens": usage.promptTokens, "completion_tokens": usage.completionTokens, "total_tokens": usage.totalTokens,
            "prompt_tokens_details": ["cached_tokens": usage.cachedPromptTokens], "completion_tokens_details": ["reasoning_tokens": usage.reasoningTokens],
        ]
    }

    static func responsesObject(id: String, model: String, created: Int, usage: TokenUsage?, status: String) -> [String: Any] {
        let text: [String: Any] = ["type": "output_text", "text": replyText, "annotations": [Any]()]
        let message: [String: Any] = ["type": "message", "id": "msg_\(id)", "status": "completed", "role": "assistant", "content": [text]]
        var object: [String: Any] = ["id": id, "object": "response", "created_at": created, "model": model, "status": status]
        object["output"] = status == "completed" ? [message] : [Any]()
        if let usage {
            object["usage"] = [
                "input_tokens": usage.promptTokens, "output_tokens": usage.completionTokens, "total_tokens": usage.totalTokens,
                "input_tokens_details": ["cached_tokens": usage.cachedPromptTokens], "output_tokens_details": ["reasoning_tokens": usage.reasoningTokens],
            ]
        } else {
            object["usage"] = NSNull()
        }
        return object
    }
}
