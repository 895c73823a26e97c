import Testing
import TollgateCore

/// `allowed_models` patterns and how a product's and a subscription's lists combine.
struct ModelAccessTests {
    @Test(arguments: [
        ("gpt-4o", "gpt-4o", true),
        ("gpt-4o", "gpt-4o-mini", false),  // no pattern character: the whole name, not a prefix
        ("gpt-4o*", "gpt-4o", true),  // `*` matches nothing too
        ("gpt-4o*", "gpt-4o-mini", true),
        ("gpt-4o*", "gpt-4", false),
        ("*-mini", "gpt-4o-mini", true),
        ("*-mini", "gpt-4o-mini-2024", false),
        ("*", "anything.at_all-1", true),
        ("gpt-*-mini", "gpt-4o-mini", true),
        ("gpt-*-mini", "gpt--mini", true),
        ("gpt-*-mini", "gpt-mini", false),
        ("a*b*c", "aXbYbZc", true),  // backtracking over a repeated letter
        ("a*b*c", "aXbYbZ", false),
        ("**", "x", true),
        ("gpt-4o.", "gpt-4oX", false),  // `.` is literal (no regular expressions)
        ("gpt-4o?", "gpt-4o1", false),  // `?` is literal too
        ("GPT-4o", "gpt-4o", false),  // case-sensitive, like the route lookup
        ("chat-prod", "chat-prod", true),
    ])
    func patternsMatchWholeNames(pattern: String, name: String, matches: Bool) {
        #expect(ModelAccess.matches(pattern: pattern, name) == matches)
    }

    @Test func noListAllowsEverything() {
        let access = ModelAccess()
        #expect(access.isUnrestricted)
        #expect(access.allows("gpt-4o") && access.allows("whatever"))
    }

    @Test func aProductListRestrictsAndASubscriptionListNarrowsIt() {
        let product = ModelAccess(product: ["gpt-4o*", "embed-*"])
        #expect(!product.isUnrestricted)
        #expect(product.allows("gpt-4o-mini") && product.allows("embed-small"))
        #expect(!product.allows("o1-preview"))

        // The intersection: a subscription never widens its product's list.
        let both = ModelAccess(product: ["gpt-4o*", "embed-*"], subscription: ["*-mini", "o1-preview"])
        #expect(both.allows("gpt-4o-mini"))
        #expect(!both.allows("gpt-4o"))  // the product's, not the subscription's
        #expect(!both.allows("o1-preview"))  // the subscription's, not the product's

        let subscriptionOnly = ModelAccess(subscription: ["o1-preview"])
        #expect(subscriptionOnly.allows("o1-preview") && !subscriptionOnly.allows("gpt-4o"))
    }
}
