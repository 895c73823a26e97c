import Foundation
import Logging
import Testing
import TollgateCore
import TollgateServer
import TollgateStore

/// A malformed tollgate.yaml is refused with file, line, column and field.
struct PolicyFileTests {
    static let valid = """
        backends:
          - name: mock
            kind: mock
            models: [gpt-4o-mini]
        products:
          - name: standard
        subscriptions:
          - id: team-a
            team: search
            product: standard
        """

    @Test func aValidFileParses() throws {
        let document = try PolicyFile.parse(Self.valid, file: "tollgate.yaml")
        #expect(document.backends.first?.deployments == [DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini")])
        #expect(document.subscriptions.first?.id == "team-a")
        #expect(document.subscriptions.first?.state == .active)
    }

    @Test(arguments: [
        // An unknown product: semantic error, pointing at the value.
        (Self.valid.replacingOccurrences(of: "product: standard", with: "product: gold"), "tollgate.yaml:10:14: subscriptions[0].product: unknown product 'gold'"),
        // A typo in a field name is an error, not a silent default.
        (Self.valid.replacingOccurrences(of: "    team: search", with: "    teem: search"), "tollgate.yaml:9:11: subscriptions[0].teem: unknown field 'teem'"),
        // A wrong type.
        (Self.valid.replacingOccurrences(of: "    kind: mock", with: "    kind: mock\n    read_timeout_seconds: soon"), "tollgate.yaml:4:27: backends[0].read_timeout_seconds: expected a whole number"),
        // A missing required field points at its mapping.
        (Self.valid.replacingOccurrences(of: "  - name: standard", with: "  - display_name: Standard"), "tollgate.yaml:6:5: products[0].name: is required"),
        // A value outside the allowed set.
        (Self.valid.replacingOccurrences(of: "kind: mock", with: "kind: bedrock"), "tollgate.yaml:3:11: backends[0].kind: 'bedrock' is not allowed; use one of: openai, azure, mock"),
    ])
    func malformedFilesNameFileLineAndField(text: String, expectedPrefix: String) throws {
        #expect {
            _ = try PolicyFile.parse(text, file: "tollgate.yaml")
        } throws: { error in
            let description = (error as? PolicyFileError)?.description ?? ""
            return description.hasPrefix(expectedPrefix)
        }
    }

    @Test func allowedModelsParseOnProductsAndSubscriptions() throws {
        let text = Self.valid
            .replacingOccurrences(of: "  - name: standard", with: "  - name: standard\n    allowed_models: [\"gpt-4o*\"]")
            .replacingOccurrences(of: "    product: standard", with: "    product: standard\n    allowed_models: [gpt-4o-mini]")
        let document = try PolicyFile.parse(text, file: "tollgate.yaml")
        #expect(document.products.first?.allowedModels == ["gpt-4o*"])
        #expect(document.subscriptions.first?.allowedModels == ["gpt-4o-mini"])
        // Absent is nil (no restriction), never an empty list (which would allow nothing).
        #expect(try PolicyFile.parse(Self.valid, file: "tollgate.yaml").products.first?.allowedModels == nil)
    }

    @Test(arguments: [
        // A pattern matching no deployment of the file: a typo or a stale name, refused where it is written.
        ("  - name: standard\n    allowed_models:\n      - gpt-4o-mini\n      - gpt-5*",
         "tollgate.yaml:9:9: products[0].allowed_models[1]: 'gpt-5*' matches no deployment in this file; deployments: gpt-4o-mini"),
        ("  - name: standard\n    allowed_models: [\"\"]", "tollgate.yaml:7:22: products[0].allowed_models[0]: must be non-empty"),
        ("  - name: standard\n    allowed_models: []", "tollgate.yaml:7:21: products[0].allowed_models: must name at least one deployment"),
    ])
    func badAllowedModelsNameFileLineAndField(replacement: String, expectedPrefix: String) throws {
        let text = Self.valid.replacingOccurrences(of: "  - name: standard", with: replacement)
        #expect {
            _ = try PolicyFile.parse(text, file: "tollgate.yaml")
        } throws: { error in
            let description = (error as? PolicyFileError)?.description ?? ""
            return description.hasPrefix(expectedPrefix)
        }
    }

    @Test func priceCatalogsMustBeShippedOnes() throws {
        let document = try PolicyFile.parse(Self.valid + "\nprice_catalogs: [openai, azure-openai]\n", file: "tollgate.yaml")
        #expect(document.priceCatalogs == ["openai", "azure-openai"])
        #expect {
            _ = try PolicyFile.parse(Self.valid + "\nprice_catalogs:\n  - openai\n  - anthropic\n", file: "tollgate.yaml")
        } throws: { error in
            (error as? PolicyFileError)?.description
                == "tollgate.yaml:13:5: price_catalogs[1]: unknown price catalog 'anthropic'; shipped: azure-openai, openai"
        }
    }

    @Test func yamlSyntaxErrorsHaveALine() throws {
        #expect {
            _ = try PolicyFile.parse("backends:\n  - name: [unclosed\n", file: "bad.yaml")
        } throws: { error in
            guard let error = error as? PolicyFileError else { return false }
            return error.file == "bad.yaml" && error.line != nil && error.description.contains("YAML syntax")
        }
    }

    @Test func environmentErrorsNameTheVariable() throws {
        #expect(throws: ConfigurationError.self) { try TollgateConfiguration(environment: ["TOLLGATE_PORT": "http"]) }
        do {
            _ = try TollgateConfiguration(environment: ["DATABASE_URL": "mysql://x"])
            Issue.record("a mysql URL was accepted")
        } catch {
            #expect(error.variable == "DATABASE_URL")
        }
        do {
            _ = try TollgateConfiguration(environment: ["TOLLGATE_UPSTREAM_CA_FILE": "/nonexistent/tollgate-ca.pem"])
            Issue.record("an unreadable CA file was accepted")
        } catch {
            #expect(error.variable == "TOLLGATE_UPSTREAM_CA_FILE" && error.description.contains("/nonexistent/tollgate-ca.pem"))
        }
    }

    @Test func theStartupLogLineCarriesNoSecrets() throws {
        let configuration = try TollgateConfiguration(environment: [
            "DATABASE_URL": "postgres://app:hunter2-secret@db.internal:5432/tollgate",
            "TOLLGATE_ADMIN_TOKEN": "admin-token-very-secret-123",
        ])
        let rendered = configuration.logMetadata.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        #expect(rendered.contains("postgres://app@db.internal:5432/tollgate"))
        #expect(!rendered.contains("hunter2-secret"))
        #expect(!rendered.contains("admin-token-very-secret-123"))
        #expect("\(configuration.database!.password!)" == "<redacted>")
    }
}
