import ArgumentParser
import Foundation
import TollgateTokenizer

struct TokensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "Count or encode tokens exactly as OpenAI's tiktoken does (o200k_base, cl100k_base); no network, no database.",
        discussion: """
            The model picks the encoding: gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1/o3/o4 and chatgpt-4o use o200k_base; gpt-4, \
            gpt-3.5-turbo (gpt-35-turbo), text-embedding-3-* and text-embedding-ada-002 use cl100k_base; dated and Azure \
            deployment names (gpt-4o-2024-08-06) count as their model; an unknown name uses o200k_base. Special tokens such \
            as <|endoftext|> are ordinary text.

            Examples:
              # 6 tokens under cl100k_base (gpt-4):
              echo -n "tiktoken is great!" | tollgate tokens count --model gpt-4
              # their ids, 83 1609 5963 374 2294 0:
              echo -n "tiktoken is great!" | tollgate tokens encode --model gpt-4
              # the ids as a JSON array, for scripts:
              tollgate tokens encode --model gpt-4o --json < prompt.txt
              # a request body (chat, completions, embeddings, responses): the prompt tokens the API bills
              # (its "model" picks the encoding):
              tollgate tokens count < request.json
              # the same file counted as plain text:
              tollgate tokens count --text --model gpt-4o < request.json
            """,
        subcommands: [Count.self, Encode.self])

    struct Selection: ParsableArguments {
        @Option(help: "The model whose encoding applies (default: a request body's \"model\", else o200k_base).") var model: String?
        @Option(help: ArgumentHelp("Use this encoding whatever the model: o200k_base or cl100k_base.", valueName: "name"))
        var encoding: String?

        func validate() throws {
            if let encoding, TokenEncoding(rawValue: encoding) == nil { throw ValidationError("--encoding must be o200k_base or cl100k_base") }
        }

        func tokenizer(model fallback: String? = nil) throws -> Tokenizer {
            if let name = encoding, let encoding = TokenEncoding(rawValue: name) { return try Tokenizer.forEncoding(encoding) }
            return try Tokenizer.forModel(model ?? fallback ?? "")
        }
    }

    struct Count: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the number of tokens of stdin.",
            discussion: """
                Plain text prints its token count. A request body prints the prompt tokens the gateway estimates for it, \
                the way OpenAI counts them: a chat completions body (a JSON object with "messages") 3 per message plus \
                its fields, 1 per name, 3 for the reply, the tools' definitions, image parts by 512-px tiles (85 for \
                detail "low"); a completions or embeddings body ("prompt", "input") the tokens of its text, or the \
                number of ids it sends; a Responses API body ("input" items, "instructions") like chat messages. \
                --text counts a body as plain text.
                """)
        @OptionGroup var selection: Selection
        @Flag(help: "Count stdin as plain text even when it is a request body.") var text = false

        func run() throws {
            let input = FileHandle.standardInput.readDataToEndOfFile()
            if !text && PromptTokenCounter.isRequestBody(input) {
                let model = selection.encoding == nil ? selection.model : representativeModel(selection.encoding)
                print(try PromptTokenCounter.promptTokens(body: input, model: model) ?? 0)
            } else {
                print(try selection.tokenizer().count(String(decoding: input, as: UTF8.self)))
            }
        }

        /// A model name that selects the encoding --encoding names, for the body counter (which takes a model).
        private func representativeModel(_ encoding: String?) -> String? {
            encoding == TokenEncoding.cl100kBase.rawValue ? "gpt-4" : "gpt-4o"
        }
    }

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the token ids of stdin (its bytes as UTF-8 text, a JSON body included), space-separated on one line.")
        @OptionGroup var selection: Selection
        @Flag(help: "Print a JSON array instead.") var json = false

        func run() throws {
            let ids = try selection.tokenizer().encode(String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self))
            print(json ? "[" + ids.map(String.init).joined(separator: ",") + "]" : ids.map(String.init).joined(separator: " "))
        }
    }
}
