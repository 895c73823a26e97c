import Foundation
import Testing
import TollgateCore
import Yams

@Suite struct BudgetYAMLTests {
    @Test func budgetsSectionParsesFromYAMLExactly() throws {
        let yaml = """
            - name: search-monthly
              scope: subscription
              target: team-search-prod
              limit: 1000000
              thresholds:
                - { percent: 80, action: alert }
                - { percent: 100, action: suspend }
            - name: eu-cost
              scope: cost_center
              target: cc-4711
              metric: cost
              currency: EUR
              period: weekly
              time_zone: Europe/Berlin
              limit: 0.1
              forecast: false
              thresholds:
                - percent: 50
            """
        let budgets = try YAMLDecoder().decode([BudgetSpec].self, from: yaml)
        #expect(budgets.map(\.name) == ["search-monthly", "eu-cost"])
        #expect(budgets[0].limit == 1_000_000)
        #expect(budgets[0].thresholds == [.init(percent: 80, action: .alert), .init(percent: 100, action: .suspend)])
        // 0.1 is exactly one tenth: parsed from the text, not through a binary float.
        #expect(budgets[1].limit == Decimal(string: "0.1")!)
        #expect(budgets[1].limit.description == "0.1")
        #expect(budgets[1].period == .weekly)
        #expect(budgets[1].definition?.scope == .costCenter("cc-4711"))
        #expect(validate(budgets: budgets, knownSubscriptions: ["team-search-prod"], knownProducts: []).isEmpty)
    }

    @Test func aTypoInAFieldNameIsAnErrorNamingIt() {
        let yaml = """
            - name: b
              scope: all
              limit: 10
              tresholds: []
            """
        #expect {
            try YAMLDecoder().decode([BudgetSpec].self, from: yaml)
        } throws: { error in
            "\(error)".contains("unknown field 'tresholds'")
        }
    }
}
