import Foundation
import HTTPTypes
import Hummingbird
import TollgateCore
import TollgateReports
import TollgateStore

extension AdminAPI {
    /// Chargeback exports and usage from other gateways.
    func registerReports(on admin: RouterGroup<BasicRequestContext>) {
        let (repositories, now) = (self.repositories, self.now)
        let report = ChargebackReport(repositories)
        // GET /admin/v1/reports/chargeback?period=2026-10&group_by=team&format=csv
        admin.get("reports/chargeback") { request, context -> Response in
            let query = request.uri.queryParameters
            guard let periodText = query["period"].map(String.init), let period = BillingPeriod.month(periodText) else {
                throw AdminError.invalid("`period` is required, as a month: period=2026-10.")
            }
            let groupText = query["group_by"].map(String.init) ?? "team"
            guard let groupBy = ChargebackGrouping(rawValue: groupText) else {
                throw AdminError.invalid("`group_by` must be one of \(ChargebackGrouping.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            let formatText = query["format"].map(String.init) ?? "json"
            guard let format = ChargebackFormat(rawValue: formatText) else {
                throw AdminError.invalid("`format` must be one of \(ChargebackFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            let data = try await report.generate(period: period, groupBy: groupBy, format: format, now: now(), logger: context.logger)
            var headers = HTTPFields()
            headers[.contentType] = ChargebackReport.contentType(of: format)
            let fileName = "chargeback-\(periodText)-\(groupText).\(format == .json ? "json" : "csv")"
            headers[.contentDisposition] = "attachment; filename=\"\(fileName)\""
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        // GET /admin/v1/prices — every price version, as CSV (the `prices list` format).
        admin.get("prices") { _, context -> Response in
            let prices = try await repositories.prices.list(logger: context.logger)
            var headers = HTTPFields()
            headers[.contentType] = "text/csv; charset=utf-8; header=present"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: PriceListing.csv(prices))))
        }
        // POST /admin/v1/prices?price_list=NAME — a price-list CSV; all or nothing, every bad line reported.
        admin.post("prices") { request, context -> Response in
            let body = try await request.body.collect(upTo: 8 << 20)
            let prices: [ModelPrice]
            do {
                prices = try PriceListCSV.parse(String(buffer: body))
            } catch let error as PriceListErrors {
                throw AdminError(.unprocessableContent, "invalid_price_list", error.errors.map { "line \($0.line): \($0.message)" }.joined(separator: "; "))
            }
            let name = request.uri.queryParameters["price_list"].map(String.init)
                ?? PriceListVersion.name(file: "admin-api", contents: Data(body.readableBytesView))
            do {
                let summary = try await repositories.prices.importPrices(prices, priceList: name, logger: context.logger)
                return try JSONEncoder().encodeResponse(summary)
            } catch let error as PriceImportError {
                throw AdminError(.conflict, "price_conflict", "\(error)")
            }
        }
        // POST /admin/v1/usage-events?source=apim-westeurope — JSON array or NDJSON; per-event rejections, the rest accepted.
        admin.post("usage-events") { request, context -> Response in
            let body = try await request.body.collect(upTo: 32 << 20)
            let source = request.uri.queryParameters["source"].map(String.init) ?? "external"
            do {
                let result = try await repositories.usageIngest.ingest(
                    body: Data(body.readableBytesView), contentType: request.headers[.contentType], source: source, now: now(), logger: context.logger)
                var response = try JSONEncoder().encodeResponse(result)
                // 200 when every event was accepted; 207-style partial success is reported as 200 with the rejections listed.
                response.status = result.accepted == 0 && result.rejected > 0 ? .unprocessableContent : .ok
                return response
            } catch let error as IngestError {
                throw AdminError.invalid(error.description)
            }
        }
    }
}
