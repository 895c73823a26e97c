/// The mergeable ranks of an encoding: byte sequence → rank, in an open-addressing hash table built once.
///
/// A rank is also the token id. Keys are compared by their first eight bytes packed in a word (one compare for most
/// tokens) and by length, then byte by byte only past eight bytes.
final class RankTable: @unchecked Sendable {  // immutable after init: the buffers are written only there
    static let absent = UInt32.max

    let count: Int
    /// All tokens' bytes back to back, in rank order; token r is `bytes[offsets[r] ..< offsets[r + 1]]`.
    private let bytes: UnsafeMutablePointer<UInt8>
    private let offsets: UnsafeMutablePointer<UInt32>
    /// The first eight bytes of each token, packed little-endian with zero padding.
    private let prefixWords: UnsafeMutablePointer<UInt64>
    /// Slot: high 32 bits from the key's hash, low 32 bits rank + 1; 0 is an empty slot.
    private let slots: UnsafeMutablePointer<UInt64>
    private let mask: Int

    /// - Parameter vocabulary: every token's bytes, in rank order (ranks are dense from 0).
    init(_ vocabulary: Vocabulary) {
        count = vocabulary.count
        bytes = .allocate(capacity: max(vocabulary.bytes.count, 1))
        offsets = .allocate(capacity: count + 1)
        prefixWords = .allocate(capacity: max(count, 1))
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: 0, count: capacity)
        vocabulary.bytes.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { bytes.update(from: base, count: source.count) }
        }
        for rank in 0...count { offsets[rank] = vocabulary.offsets[rank] }
        for rank in 0..<count {
            let start = Int(offsets[rank])
            let length = Int(offsets[rank + 1]) - start
            let key = Self.key(base: bytes + start, count: length, readable: length)
            prefixWords[rank] = key.word
            var index = Int(truncatingIfNeeded: key.hash) & mask
            while slots[index] != 0 { index = (index + 1) & mask }
            slots[index] = (key.hash & 0xFFFF_FFFF_0000_0000) | UInt64(rank + 1)
        }
    }

    deinit {
        bytes.deallocate()
        offsets.deallocate()
        prefixWords.deallocate()
        slots.deallocate()
    }

    /// The first (up to) eight bytes at `base`, packed little-endian. When eight bytes can be read (`readable`, the
    /// bytes valid from `base`, may exceed `count`), one load and a mask replace the byte loop.
    @inline(__always) private static func word(_ base: UnsafePointer<UInt8>, _ count: Int, readable: Int) -> UInt64 {
        if readable >= 8 {
            let word = UInt64(littleEndian: UnsafeRawPointer(base).loadUnaligned(as: UInt64.self))
            return count >= 8 ? word : word & ((1 &<< (UInt64(count) &* 8)) &- 1)
        }
        var word: UInt64 = 0
        var i = count - 1
        while i >= 0 {
            word = word << 8 | UInt64(base[i])
            i -= 1
        }
        return word
    }

    /// The key's packed prefix word and its hash.
    @inline(__always) private static func key(base: UnsafePointer<UInt8>, count: Int, readable: Int) -> (word: UInt64, hash: UInt64) {
        let first = word(base, count, readable: readable)
        var hash = (first ^ (UInt64(count) &* 0x9E37_79B9_7F4A_7C15)) &* 0xFF51_AFD7_ED55_8CCD
        var i = 8
        while i < count {
            hash = (hash ^ (hash >> 32) ^ word(base + i, min(8, count - i), readable: readable - i)) &* 0xC4CE_B9FE_1A85_EC53
            i += 8
        }
        return (first, hash ^ (hash >> 29))
    }

    /// The rank of the `count` bytes at `base`, or `absent`. `readable` bytes from `base` are valid memory
    /// (at least `count`; more lets the key load whole words).
    @inline(__always) func rank(_ base: UnsafePointer<UInt8>, _ count: Int, readable: Int) -> UInt32 {
        let key = Self.key(base: base, count: count, readable: readable)
        let tag = key.hash & 0xFFFF_FFFF_0000_0000
        var index = Int(truncatingIfNeeded: key.hash) & mask
        while true {
            let slot = slots[index]
            if slot == 0 { return Self.absent }
            if slot & 0xFFFF_FFFF_0000_0000 == tag {
                let rank = Int(slot & 0xFFFF_FFFF) - 1
                let start = Int(offsets[rank])
                if Int(offsets[rank + 1]) - start == count && prefixWords[rank] == key.word
                    && (count <= 8 || memoryEqual(bytes + start + 8, base + 8, count - 8))
                {
                    return UInt32(rank)
                }
            }
            index = (index + 1) & mask
        }
    }

    @inline(__always) private func memoryEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        var i = 0
        while i < count {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }

    /// The bytes of the token with this rank, or nil when there is none.
    func bytes(ofRank rank: Int) -> UnsafeBufferPointer<UInt8>? {
        guard rank >= 0 && rank < count else { return nil }
        let start = Int(offsets[rank])
        return UnsafeBufferPointer(start: bytes + start, count: Int(offsets[rank + 1]) - start)
    }
}
