import Foundation
import Testing
import TollgateCore

/// Builds a Decimal from significand and exponent, so expected values never pass through the parser under test.
private func dec(_ significand: Int, _ exponent: Int) -> Decimal {
    Decimal(sign: significand < 0 ? .minus : .plus, exponent: exponent, significand: Decimal(abs(significand)))
}

struct FixedPointTests {
    @Test(
        arguments: [
            // Half to even at the boundary: ties go to the even neighbour.
            (dec(25, -1), 0, "2"),
            (dec(35, -1), 0, "4"),
            (dec(-25, -1), 0, "-2"),
            (dec(-35, -1), 0, "-4"),
            (dec(125, -3), 2, "0.12"),
            (dec(135, -3), 2, "0.14"),
            (dec(1251, -4), 2, "0.13"),  // not a tie: above half rounds up
            // Padding and plain rendering.
            (dec(1, 0), 2, "1.00"),
            (dec(0, 0), 3, "0.000"),
            (dec(5, 1), 0, "50"),
            (dec(1_234_567_891, -3), 2, "1234567.89"),
            (dec(123_456_789_012_345_678, -10), 10, "12345678.9012345678"),
            // A negative amount that rounds to zero prints without a sign.
            (dec(-1, -7), 6, "0.000000"),
            (dec(-1, -6), 6, "-0.000001"),
        ] as [(Decimal, Int, String)])
    func rendersWithBankersRounding(value: Decimal, scale: Int, expected: String) {
        #expect(value.fixedPoint(scale: scale) == expected)
    }

    @Test func roundedMoneyKeepsItsCurrency() {
        let money = Money(dec(100_005, -5), "EUR").rounded(scale: 4)
        #expect(money == Money(dec(10_000, -4), "EUR"))  // 1.00005 → 1.0000 (tie, 0 is even)
    }

    @Test func descriptionShowsTenDecimalsAndCurrency() {
        #expect(Money(dec(125, -1), "USD").description == "12.5000000000 USD")
    }
}

struct MoneyArithmeticTests {
    @Test func addsTheSameCurrencyExactly() throws {
        // 0.1 + 0.2 is exactly 0.3 in Decimal, unlike Double.
        let sum = try Money(dec(1, -1), "USD").adding(Money(dec(2, -1), "USD"))
        #expect(sum == Money(dec(3, -1), "USD"))
    }

    @Test func refusesToAddDifferentCurrencies() {
        #expect(throws: MoneyError.currencyMismatch(expected: "USD", found: "EUR")) {
            try Money(dec(1, 0), "USD").adding(Money(dec(1, 0), "EUR"))
        }
    }
}

struct DecimalExactParsingTests {
    @Test(arguments: ["1e5", "1E5", "abc", "", "   ", "1.", ".5", "+1", "1,5", "1.2.3", "0x10", "NaN", "--1", "1 000"])
    func rejects(text: String) {
        #expect(Decimal(exactly: text) == nil)
    }

    @Test(
        arguments: [
            ("-0.000001", dec(-1, -6)),
            ("12.50", dec(125, -1)),
            ("0", dec(0, 0)),
            ("-3", dec(-3, 0)),
            (" 7.25 ", dec(725, -2)),
            ("123456789.000000001", dec(123_456_789_000_000_001, -9)),
        ] as [(String, Decimal)])
    func accepts(text: String, expected: Decimal) {
        #expect(Decimal(exactly: text) == expected)
    }
}
