import Testing
import TollgateTokenizer

struct ModelEncodingTests {
    @Test(arguments: [
        "gpt-4o", "gpt-4o-mini", "gpt-4o-2024-08-06", "chatgpt-4o-latest", "gpt-4.1", "gpt-4.1-mini-2025-04-14", "gpt-4.5-preview",
        "gpt-5", "gpt-5-mini", "o1", "o1-preview", "o3", "o3-mini", "o4-mini", "o4-mini-2025-04-16", "ft:gpt-4o-mini:acme::abc",
        "azure/gpt-4o", "GPT-4O", "gpt-oss-120b",
    ])
    func o200kModels(_ model: String) {
        #expect(TokenEncoding.forModel(model) == .o200kBase)
    }

    @Test(arguments: [
        "gpt-4", "gpt-4-0613", "gpt-4-32k", "gpt-4-turbo", "gpt-4-turbo-2024-04-09", "gpt-3.5-turbo", "gpt-3.5-turbo-0125",
        "gpt-35-turbo", "gpt-35-turbo-16k", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002",
        "ft:gpt-3.5-turbo:acme::xyz", "openai/gpt-4",
    ])
    func cl100kModels(_ model: String) {
        #expect(TokenEncoding.forModel(model) == .cl100kBase)
    }

    @Test(arguments: ["", "my-deployment", "claude-3-5-sonnet", "llama-3"])
    func unknownModelsGetTheDocumentedDefault(_ model: String) {
        #expect(TokenEncoding.defaultForUnknownModels == .o200kBase)
        #expect(TokenEncoding.forModel(model) == .o200kBase)
    }
}
