import Foundation
import TollgateCore
import TollgateStore

/// `tollgate prices list`: every stored version as CSV, in the import format plus id, validity end and price list.
public enum PriceListing {
    public static func csv(_ prices: [StoredPrice]) -> Data {
        var text = CSV.row(["id"] + PriceListCSV.columns + ["effective_to", "price_list"])
        for stored in prices {
            let p = stored.price
            text += CSV.row([
                String(stored.id), CSV.text(p.model), CSV.text(p.backend), CSV.text(p.deployment), p.currency, p.effectiveFrom.iso8601,
                p.inputPerMillion.plain, p.cachedInputPerMillion?.plain ?? "", p.outputPerMillion.plain, p.reasoningPerMillion?.plain ?? "",
                stored.effectiveTo?.iso8601 ?? "", CSV.text(stored.priceList),
            ])
        }
        return Data(text.utf8)
    }
}
