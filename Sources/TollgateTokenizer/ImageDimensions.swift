import Foundation

/// Width and height from the header of a PNG, GIF, JPEG or WebP image, for the image parts that carry their bytes
/// (`data:` URLs). Reads headers only; nil for anything else.
enum ImageDimensions {
    /// The size of the image in a `data:image/...;base64,` URL.
    static func ofDataURL(_ url: String) -> (width: Int, height: Int)? {
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") else { return nil }
        // Headers sit in the first bytes (a JPEG's frame header may follow EXIF data, so take a generous prefix).
        let encoded = url[url.index(after: comma)...].prefix(262_144)
        let whole = encoded.count - encoded.count % 4
        guard let data = Data(base64Encoded: String(encoded.prefix(whole))) else { return nil }
        return of([UInt8](data))
    }

    static func of(_ bytes: [UInt8]) -> (width: Int, height: Int)? {
        func be16(_ i: Int) -> Int { Int(bytes[i]) << 8 | Int(bytes[i + 1]) }
        func le16(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 }
        func be32(_ i: Int) -> Int { be16(i) << 16 | be16(i + 2) }
        if bytes.count >= 24, bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return (be32(16), be32(20)) }
        if bytes.count >= 10, bytes.starts(with: Array("GIF8".utf8)) { return (le16(6), le16(8)) }
        if bytes.count >= 30, bytes.starts(with: Array("RIFF".utf8)), Array(bytes[8..<12]) == Array("WEBP".utf8) {
            switch String(decoding: bytes[12..<16], as: UTF8.self) {
            case "VP8 ": return (le16(26) & 0x3FFF, le16(28) & 0x3FFF)
            case "VP8L":
                let bits = Int(bytes[21]) | Int(bytes[22]) << 8 | Int(bytes[23]) << 16 | Int(bytes[24]) << 24
                return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            case "VP8X":
                let w = Int(bytes[24]) | Int(bytes[25]) << 8 | Int(bytes[26]) << 16
                let h = Int(bytes[27]) | Int(bytes[28]) << 8 | Int(bytes[29]) << 16
                return (w + 1, h + 1)
            default: return nil
            }
        }
        guard bytes.count >= 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return nil }
        // JPEG: walk the segments to the first start-of-frame (SOF0–SOF15 except DHT, JPG and DAC).
        var i = 2
        while i + 9 < bytes.count {
            guard bytes[i] == 0xFF else { return nil }
            let marker = bytes[i + 1]
            if marker == 0xFF {  // fill byte
                i += 1
                continue
            }
            if (0xC0...0xCF).contains(marker) && ![0xC4, 0xC8, 0xCC].contains(marker) { return (be16(i + 7), be16(i + 5)) }
            i += 2 + be16(i + 2)
        }
        return nil
    }
}
