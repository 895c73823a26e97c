/// A byte-pair encoding of OpenAI's, by its tiktoken name.
public enum TokenEncoding: String, Sendable, CaseIterable, Hashable {
    /// GPT-4o, GPT-4.1, GPT-4.5, GPT-5 and the o-series reasoning models.
    case o200kBase = "o200k_base"
    /// GPT-4, GPT-3.5 Turbo and the text-embedding-3 / ada-002 embedding models.
    case cl100kBase = "cl100k_base"

    /// The encoding used for a model Tollgate does not recognise: every OpenAI model released since May 2024 uses
    /// o200k_base, so an unknown (newer) name is most likely one of them.
    public static let defaultForUnknownModels: TokenEncoding = .o200kBase

    /// The encoding of a model, deployment or fine-tune name, as tiktoken's `encoding_for_model` maps it, plus Azure
    /// deployment-style names (`gpt-35-turbo`, `gpt-4o-2024-08-06`). Case is ignored; names Tollgate does not
    /// recognise get `defaultForUnknownModels`.
    public static func forModel(_ model: String) -> TokenEncoding {
        var name = model.lowercased()
        // An Azure or gateway-style provider prefix ("azure/gpt-4o", "openai/gpt-4") names the same model.
        if let slash = name.lastIndex(of: "/") { name = String(name[name.index(after: slash)...]) }
        // Fine-tunes are "ft:<base model>:<org>:<suffix>:<id>".
        if name.hasPrefix("ft:") { name = String(name.dropFirst(3)) }
        if let exact = exactNames[name] { return exact }
        for (prefix, encoding) in prefixes where name.hasPrefix(prefix) { return encoding }
        return defaultForUnknownModels
    }

    private static let exactNames: [String: TokenEncoding] = [
        "o1": .o200kBase, "o3": .o200kBase, "o4-mini": .o200kBase, "gpt-5": .o200kBase, "gpt-4.1": .o200kBase,
        "gpt-4o": .o200kBase, "gpt-4": .cl100kBase, "gpt-3.5-turbo": .cl100kBase, "gpt-3.5": .cl100kBase,
        "gpt-35-turbo": .cl100kBase, "davinci-002": .cl100kBase, "babbage-002": .cl100kBase,
        "text-embedding-ada-002": .cl100kBase, "text-embedding-3-small": .cl100kBase, "text-embedding-3-large": .cl100kBase,
    ]

    /// Checked in order, so a longer prefix that maps elsewhere ("gpt-4o") comes before a shorter one ("gpt-4").
    private static let prefixes: [(String, TokenEncoding)] = [
        ("o1", .o200kBase), ("o3", .o200kBase), ("o4", .o200kBase), ("gpt-5", .o200kBase), ("gpt-4.5", .o200kBase),
        ("gpt-4.1", .o200kBase), ("chatgpt-4o", .o200kBase), ("gpt-4o", .o200kBase), ("gpt-oss", .o200kBase),
        ("gpt-4", .cl100kBase), ("gpt-3.5", .cl100kBase), ("gpt-35", .cl100kBase), ("text-embedding-3", .cl100kBase),
        ("text-embedding-ada-002", .cl100kBase), ("davinci-002", .cl100kBase), ("babbage-002", .cl100kBase),
    ]
}
