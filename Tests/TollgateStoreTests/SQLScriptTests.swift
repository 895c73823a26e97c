import Testing
import TollgateStore

struct SQLScriptTests {
    @Test(
        arguments: [
            ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
            ("SELECT 1", ["SELECT 1"]),
            ("  ;; ;\n", []),
            // Comments: line, block, nested block; a comment-only tail is not a statement.
            ("-- a; b\nSELECT 1; /* c; /* nested; */ d; */ SELECT 2; -- done;", ["SELECT 1", "SELECT 2"]),
            ("-- nothing here;\n/* or; here */", []),
            ("SELECT 1 -- trailing; comment\n, 2;", ["SELECT 1 \n, 2"]),
            // Semicolons inside quotes, and doubled quotes that stay inside.
            ("SELECT 'a;b'; SELECT \"we;ird\" FROM t", ["SELECT 'a;b'", "SELECT \"we;ird\" FROM t"]),
            ("SELECT 'it''s; fine'; SELECT 2", ["SELECT 'it''s; fine'", "SELECT 2"]),
            ("SELECT \"a\"\";b\" FROM t; SELECT 2", ["SELECT \"a\"\";b\" FROM t", "SELECT 2"]),
            ("SELECT '-- not a comment;'; SELECT '/*'; SELECT 3", ["SELECT '-- not a comment;'", "SELECT '/*'", "SELECT 3"]),
            // Escape strings: a backslash-escaped quote does not end the literal.
            ("SELECT E'it\\'s; one'; SELECT 2", ["SELECT E'it\\'s; one'", "SELECT 2"]),
            ("SELECT e'\\\\'; SELECT 2", ["SELECT e'\\\\'", "SELECT 2"]),
            // In a plain string a backslash is an ordinary character.
            ("SELECT 'C:\\'; SELECT 2", ["SELECT 'C:\\'", "SELECT 2"]),
            // Dollar quotes, anonymous and tagged, with semicolons, quotes and other tags inside.
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$; SELECT 2",
                ["CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$", "SELECT 2"]
            ),
            (
                "DO $body$ BEGIN PERFORM 'x$$y; '; RAISE NOTICE $$;$$; END $body$; SELECT 3",
                ["DO $body$ BEGIN PERFORM 'x$$y; '; RAISE NOTICE $$;$$; END $body$", "SELECT 3"]
            ),
            ("SELECT $a_1$;$a_1$; SELECT 2", ["SELECT $a_1$;$a_1$", "SELECT 2"]),
            // Positional parameters and `$` inside identifiers are not dollar quotes.
            ("SELECT $1; SELECT $2", ["SELECT $1", "SELECT $2"]),
            ("SELECT a$b$c FROM t; SELECT 2", ["SELECT a$b$c FROM t", "SELECT 2"]),
        ] as [(String, [String])])
    func splits(script: String, expected: [String]) {
        #expect(SQLScript.statements(in: script) == expected)
    }

    @Test func splitsTheShippedCatalogMigrationIntoItsStatements() throws {
        let catalog = try #require(try Migration.bundled().first { $0.version == 1 })
        let statements = SQLScript.statements(in: catalog.sql)
        // 5 tables + 1 partial unique index + 1 function + 5 triggers.
        #expect(statements.count == 12)
        #expect(statements.filter { $0.hasPrefix("CREATE TABLE") }.count == 5)
        let function = try #require(statements.first { $0.hasPrefix("CREATE FUNCTION") })
        #expect(function.hasSuffix("END $$"))
        #expect(function.contains("PERFORM pg_notify('tollgate_catalog', TG_TABLE_NAME);"))
    }
}
