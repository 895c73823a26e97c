import Foundation

/// Prompt tokens of a chat completions request, counted the way OpenAI counts them (the OpenAI cookbook's "How to
/// count tokens with tiktoken", whose examples match the API's `usage.prompt_tokens`).
///
/// - every message costs `tokensPerMessage` plus the tokens of each of its string fields (role, content, name,
///   tool_call_id, ...); a `name` costs `tokensPerName` more; the reply is primed with `replyPriming` tokens;
/// - content parts: `text` parts count their text, `image_url` parts by `ImageTokenCost`; audio and file parts are
///   not counted (their price is not in tokens of the text encoding);
/// - an assistant message's `tool_calls` count each call's function name and arguments;
/// - `tools` (and the legacy `functions`) count as the cookbook's function example does: per function a fixed
///   overhead plus `name:description`, per property `name:type:description` and enum values, plus a closing
///   overhead. Nested object properties and `response_format` schemas are not counted.
public enum ChatTokenCounter {
    /// Each message is wrapped in `<|start|>{role}<|message|>…<|end|>`: 3 tokens besides its fields.
    public static let tokensPerMessage = 3
    /// A message's `name` costs one token more than its text.
    public static let tokensPerName = 1
    /// Every reply is primed with `<|start|>assistant<|message|>`.
    public static let replyPriming = 3

    /// Why a body could not be counted.
    public enum BodyError: Error, Sendable, Equatable {
        /// The body is not a JSON object.
        case notJSONObject
        /// The object has no `messages` array.
        case noMessages
    }

    /// The prompt tokens of a chat completions request body.
    /// - Parameters:
    ///   - body: the request's JSON bytes.
    ///   - model: the model whose encoding and rates apply; nil takes the body's `model` (and an unknown or absent
    ///     one gets `TokenEncoding.defaultForUnknownModels`).
    /// - Throws: `BodyError` for a body that is not a chat request; `TokenizerError` if a vocabulary cannot load.
    public static func promptTokens(body: Data, model: String? = nil) throws -> Int {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { throw BodyError.notJSONObject }
        guard let messages = object["messages"] as? [Any] else { throw BodyError.noMessages }
        let model = model ?? (object["model"] as? String) ?? ""
        return promptTokens(object: object, messages: messages, tokenizer: try Tokenizer.forModel(model), model: model)
    }

    /// The prompt tokens of a parsed chat request whose `messages` are `messages`.
    static func promptTokens(object: [String: Any], messages: [Any], tokenizer: Tokenizer, model: String) -> Int {
        var total = replyPriming
        for case let message as [String: Any] in messages {
            total += messageTokens(message, tokenizer: tokenizer, model: model)
        }
        let tools = (object["tools"] as? [Any] ?? []).compactMap { ($0 as? [String: Any])?["function"] as? [String: Any] }
        let functions = (object["functions"] as? [Any] ?? []).compactMap { $0 as? [String: Any] }
        total += functionTokens(tools + functions, tokenizer: tokenizer)
        return total
    }

    /// True when the bytes are a JSON object with a `messages` array (a chat completions body, not plain text).
    public static func isChatBody(_ body: Data) -> Bool {
        guard let first = body.first(where: { !$0.isASCIIWhitespace }), first == UInt8(ascii: "{") else { return false }
        return ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["messages"] is [Any]
    }

    static func messageTokens(_ message: [String: Any], tokenizer: Tokenizer, model: String) -> Int {
        var total = tokensPerMessage
        for (key, value) in message {
            switch value {
            case let text as String:
                total += tokenizer.count(text)
                if key == "name" { total += tokensPerName }
            case let parts as [Any] where key == "content":
                for case let part as [String: Any] in parts { total += partTokens(part, tokenizer: tokenizer, model: model) }
            case let calls as [Any] where key == "tool_calls":
                for case let call as [String: Any] in calls {
                    guard let function = call["function"] as? [String: Any] else { continue }
                    total += tokenizer.count(function["name"] as? String ?? "") + tokenizer.count(function["arguments"] as? String ?? "")
                }
            case let call as [String: Any] where key == "function_call":
                total += tokenizer.count(call["name"] as? String ?? "") + tokenizer.count(call["arguments"] as? String ?? "")
            default:
                continue
            }
        }
        return total
    }

    static func partTokens(_ part: [String: Any], tokenizer: Tokenizer, model: String) -> Int {
        switch part["type"] as? String {
        case "text", "input_text", "refusal":
            return tokenizer.count(part["text"] as? String ?? part["refusal"] as? String ?? "")
        case "image_url":
            let image = part["image_url"] as? [String: Any] ?? [:]
            let detail = (image["detail"] as? String).flatMap(ImageTokenCost.Detail.init(rawValue:)) ?? .auto
            var width = (image["width"] as? NSNumber)?.intValue
            var height = (image["height"] as? NSNumber)?.intValue
            if width == nil || height == nil, let url = image["url"] as? String, let size = ImageDimensions.ofDataURL(url) {
                (width, height) = (size.width, size.height)
            }
            return ImageTokenCost.tokens(detail: detail, width: width, height: height, model: model)
        default:
            return 0
        }
    }

    /// Overheads of the cookbook's `num_tokens_for_tools`, measured by OpenAI against the API.
    struct FunctionOverheads {
        let perFunction: Int, properties = 3, perProperty = 3, enumStart = -3, perEnumValue = 3, end = 12
    }

    static func overheads(_ encoding: TokenEncoding) -> FunctionOverheads {
        FunctionOverheads(perFunction: encoding == .o200kBase ? 7 : 10)
    }

    static func functionTokens(_ functions: [[String: Any]], tokenizer: Tokenizer) -> Int {
        guard !functions.isEmpty else { return 0 }
        let rates = overheads(tokenizer.encoding)
        var total = 0
        for function in functions {
            total += rates.perFunction
            total += tokenizer.count((function["name"] as? String ?? "") + ":" + droppingFinalPeriod(function["description"]))
            let parameters = function["parameters"] as? [String: Any]
            guard let properties = parameters?["properties"] as? [String: Any], !properties.isEmpty else { continue }
            total += rates.properties
            for (name, value) in properties {
                total += rates.perProperty
                let property = value as? [String: Any] ?? [:]
                if let values = property["enum"] as? [Any] {
                    total += rates.enumStart
                    for item in values { total += rates.perEnumValue + tokenizer.count(item as? String ?? "\(item)") }
                }
                let type = property["type"] as? String ?? ""
                total += tokenizer.count("\(name):\(type):\(droppingFinalPeriod(property["description"]))")
            }
        }
        return total + rates.end
    }

    private static func droppingFinalPeriod(_ value: Any?) -> String {
        let text = value as? String ?? ""
        return text.hasSuffix(".") ? String(text.dropLast()) : text
    }
}

extension UInt8 {
    fileprivate var isASCIIWhitespace: Bool { self == 0x20 || self == 0x09 || self == 0x0A || self == 0x0D }
}
