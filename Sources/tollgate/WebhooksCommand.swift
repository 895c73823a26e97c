import ArgumentParser
import Foundation
import TollgateServer
import TollgateStore

/// `tollgate webhooks create|deliveries`: register receivers and read the delivery log.
struct WebhooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "Budget and subscription webhooks (Standard Webhooks, signed with whsec_ secrets).",
        discussion: "Event types and payloads: docs/webhooks.md.",
        subcommands: [Create.self, Deliveries.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a webhook endpoint; prints its id and signing secret (shown once).")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "The receiver's http(s) URL. Private and loopback addresses are refused at delivery unless the server allows them.")
        var url: String
        @Option(help: "A whsec_ secret to use instead of a new random one.") var secret: String?
        @Option(name: .customLong("event"), help: "An event type to receive (repeatable); all types when omitted.") var events: [String] = []

        func run() async throws {
            let (url, secret, events) = (url, secret, events)
            let created = try await CLIDatabase.withDatabase(database) { database, _ in
                try await RulesAdmin.createWebhookEndpoint(
                    webhooks: database.webhooks, url: url, secret: secret, eventTypes: events)
            }
            print("endpoint \(created.id.uuidString.lowercased())")
            print("secret \(created.secret)")
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show delivery attempts, newest first.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "Only this endpoint's attempts (its id).") var endpoint: String?
        @Option(help: "At most this many attempts.") var limit: Int = 50

        func run() async throws {
            let (endpoint, limit) = (endpoint, limit)
            let deliveries = try await CLIDatabase.withDatabase(database) { database, _ in
                try await RulesAdmin.deliveries(webhooks: database.webhooks, endpoint: endpoint, limit: limit)
            }
            if deliveries.isEmpty { print("no deliveries") }
            for delivery in deliveries { print(RulesAdmin.describe(delivery)) }
        }
    }
}
