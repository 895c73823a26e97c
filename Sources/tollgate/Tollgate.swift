// tollgate: the thin CLI — parses flags into a TollgateConfiguration and calls TollgateServer and the libraries; no logic of its own.

import ArgumentParser
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

@main
struct Tollgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate",
        abstract: "Meter, bound and bill LLM usage: an OpenAI-compatible metering gateway with budgets and chargeback.",
        discussion: """
            Quick start (no database needed: Tollgate runs its own PostgreSQL under ./.tollgate):
              tollgate serve --config examples/tollgate.yaml
              tollgate keys create --subscription team-search-prod
              curl http://127.0.0.1:8080/v1/chat/completions -H "Authorization: Bearer <key>" \\
                   -H "Content-Type: application/json" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

            Set DATABASE_URL=postgres://USER:PASS@HOST:5432/DB to use an existing PostgreSQL instead.
            Every command accepts --help.
            """,
        version: "0.1.0",
        subcommands: [
            ServeCommand.self, MigrateCommand.self, ApplyCommand.self, ValidateCommand.self, KeysCommand.self, ReportCommand.self, PricesCommand.self,
            PeriodCommand.self, SubscriptionsCommand.self, WebhooksCommand.self, UsageCommand.self, TokensCommand.self,
        ]
    )

    /// Runs Swift concurrency's tasks on NIO's event loops instead of a separate thread pool: a proxied request then
    /// stays on the thread its socket lives on, without a thread switch at every `await` on I/O. Must happen before any
    /// other task is started. Blocking calls (fsync, waiting for a child process) go to NIO's thread pool instead.
    static func main() async {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        let logTo = CommandLine.arguments.dropFirst().first == "serve" ? STDOUT_FILENO : STDERR_FILENO
        LoggingSystem.bootstrap { label in TollgateLogHandler(label: label, fileDescriptor: logTo) }
        await main(nil)
    }
}
