/// The prompt tokens of one image part, by OpenAI's tile rule for vision models.
///
/// `detail: low` costs a fixed base. `high` (and `auto`, which the API resolves to high for any image worth tiling)
/// scales the image to fit inside 2048×2048, then so that its short side is at most 768 px (never up), counts the
/// 512-px tiles that cover it and costs base + per-tile × tiles. gpt-4o-mini prices images in tokens 33⅓ times
/// higher (2,833 + 5,667 per tile), so that their cost in money is the same as gpt-4o's.
public enum ImageTokenCost {
    /// The `detail` of an `image_url` part.
    public enum Detail: String, Sendable {
        case low, high, auto
    }

    /// What an image of unknown size costs at high/auto detail: the cost of a 1024×1024 image (4 tiles, 765 tokens
    /// at gpt-4o rates). A chat request carries only a URL, so the size is known only from a data URL's header or
    /// Tollgate's optional `width`/`height` fields; remote images are charged as this typical size.
    public static let unknownSizeTiles = 4

    /// Base and per-tile tokens of a model's image pricing.
    public static func rates(forModel model: String) -> (base: Int, perTile: Int) {
        model.lowercased().contains("gpt-4o-mini") ? (2_833, 5_667) : (85, 170)
    }

    /// The tokens of an image part.
    /// - Parameters:
    ///   - width: pixels, when known; with `height`.
    ///   - height: pixels, when known.
    public static func tokens(detail: Detail, width: Int?, height: Int?, model: String) -> Int {
        let (base, perTile) = rates(forModel: model)
        if detail == .low { return base }
        guard let width, let height, width > 0, height > 0 else { return base + perTile * unknownSizeTiles }
        return base + perTile * tiles(width: width, height: height)
    }

    /// 512-px tiles after fitting into 2048×2048 and scaling the short side down to 768. Each scaling step rounds
    /// down to whole pixels, as a resize does.
    public static func tiles(width: Int, height: Int) -> Int {
        var (w, h) = (width, height)
        let longSide = max(w, h)
        if longSide > 2048 {
            w = w * 2048 / longSide
            h = h * 2048 / longSide
        }
        let shortSide = min(w, h)
        if shortSide > 768 {
            w = w * 768 / shortSide
            h = h * 768 / shortSide
        }
        return ((max(w, 1) + 511) / 512) * ((max(h, 1) + 511) / 512)
    }
}
