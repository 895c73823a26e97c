import Foundation

/// Prompt tokens of any OpenAI request body the gateway meters, for when the upstream reports none (and for the
/// admission estimate). Exact where OpenAI publishes the rule, close where it does not:
///
/// - chat completions (`messages`): `ChatTokenCounter`, OpenAI's rules;
/// - completions (`prompt`) and embeddings (`input`): a string, a list of strings, a list of token ids or a list of
///   such lists; text is tokenized, ids are counted;
/// - the Responses API (`input`, `instructions`): a string input is tokenized; a list of input items is counted
///   like chat messages (each item `ChatTokenCounter.tokensPerMessage` plus its role, text and image parts), and the
///   instructions like a system message;
/// - anything else: the tokens of every string under `content`, `text`, `input` and `prompt`.
public enum PromptTokenCounter {
    /// The prompt tokens of a request body.
    /// - Parameters:
    ///   - body: the request's JSON bytes.
    ///   - model: the model whose encoding applies; nil takes the body's `model`.
    /// - Returns: nil when the body is not a JSON object.
    /// - Throws: `TokenizerError` if a vocabulary cannot load.
    public static func promptTokens(body: Data, model: String? = nil) throws(TokenizerError) -> Int? {
        guard let (object, model) = parse(body, model: model) else { return nil }
        return promptTokens(object: object, model: model, tokenizer: try Tokenizer.forModel(model))
    }

    /// The prompt tokens of a request body with the model's tokenizer only if its vocabulary has already loaded
    /// (`Tokenizer.loaded(forModel:)`): never waits. Nil when the body is not a JSON object or the vocabulary is not
    /// there (the caller falls back to a size-based figure).
    public static func promptTokensIfLoaded(body: Data, model: String? = nil) -> Int? {
        guard let (object, model) = parse(body, model: model), let tokenizer = Tokenizer.loaded(forModel: model) else { return nil }
        return promptTokens(object: object, model: model, tokenizer: tokenizer)
    }

    /// The body as a JSON object and the model whose encoding applies (`model`, else the body's); nil if not an object.
    private static func parse(_ body: Data, model: String?) -> (object: [String: Any], model: String)? {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else { return nil }
        return (object, model ?? (object["model"] as? String) ?? "")
    }

    static func promptTokens(object: [String: Any], model: String, tokenizer: Tokenizer) -> Int {
        if let messages = object["messages"] as? [Any] {
            return ChatTokenCounter.promptTokens(object: object, messages: messages, tokenizer: tokenizer, model: model)
        }
        var total = 0
        if let prompt = object["prompt"] { total += textOrIDs(prompt, tokenizer: tokenizer) }
        if let instructions = object["instructions"] as? String {
            total += ChatTokenCounter.tokensPerMessage + tokenizer.count(instructions)
        }
        switch object["input"] {
        case let items as [Any] where items.contains(where: { $0 is [String: Any] }):
            // Responses API input items: messages with string or part content, and function-call outputs.
            for case let item as [String: Any] in items {
                total += ChatTokenCounter.tokensPerMessage
                for (key, value) in item {
                    switch value {
                    case let text as String where key == "role" || key == "content" || key == "output" || key == "arguments" || key == "text":
                        total += tokenizer.count(text)
                    case let parts as [Any] where key == "content":
                        for case let part as [String: Any] in parts { total += ChatTokenCounter.partTokens(part, tokenizer: tokenizer, model: model) }
                    default: continue
                    }
                }
            }
        case let input?:
            total += textOrIDs(input, tokenizer: tokenizer)
        case nil:
            break
        }
        return total
    }

    /// True when the bytes are a JSON object with `messages`, `prompt` or `input`: a request body, not plain text.
    public static func isRequestBody(_ body: Data) -> Bool {
        guard let first = body.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }), first == UInt8(ascii: "{"),
            let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        else { return false }
        return object["messages"] != nil || object["prompt"] != nil || object["input"] != nil
    }

    /// A string, a list of strings, a list of token ids, or a list of lists of token ids.
    static func textOrIDs(_ value: Any, tokenizer: Tokenizer) -> Int {
        switch value {
        case let text as String: tokenizer.count(text)
        case let list as [Any]: list.reduce(0) { total, item in
            switch item {
            case let text as String: total + tokenizer.count(text)
            case let ids as [Any]: total + ids.count
            case is NSNumber: total + 1
            default: total
            }
        }
        default: 0
        }
    }
}
