/// Reusable buffers for merging pieces that are not tokens themselves, grown to the longest piece seen.
struct MergeScratch: ~Copyable {
    private(set) var capacity = 0
    private(set) var starts: UnsafeMutablePointer<Int32> = .allocate(capacity: 1)
    private(set) var ranks: UnsafeMutablePointer<UInt32> = .allocate(capacity: 1)
    /// Linked-list links and the heap of `longPieceThreshold`-plus pieces.
    private(set) var links: UnsafeMutablePointer<Int32> = .allocate(capacity: 1)
    private(set) var heap: UnsafeMutablePointer<UInt64> = .allocate(capacity: 1)

    mutating func reserve(_ pieceLength: Int) {
        guard pieceLength + 1 > capacity else { return }
        let newCapacity = max(pieceLength + 1, capacity * 2, 64)
        starts.deallocate()
        ranks.deallocate()
        links.deallocate()
        heap.deallocate()
        starts = .allocate(capacity: newCapacity)
        ranks = .allocate(capacity: newCapacity)
        links = .allocate(capacity: newCapacity * 2)
        heap = .allocate(capacity: newCapacity * 4)
        capacity = newCapacity
    }

    deinit {
        starts.deallocate()
        ranks.deallocate()
        links.deallocate()
        heap.deallocate()
    }
}

extension RankTable {
    /// Pieces longer than this merge through a heap (O(n log n)) rather than tiktoken's rescan of every pair after
    /// each merge (O(n²)): a megabyte of one letter must not stall a request. Both choose the same merges.
    static let longPieceThreshold = 128

    /// The tokens of one piece, as tiktoken's `byte_pair_encode` makes them: a piece that is a token is that token;
    /// otherwise adjacent parts are merged lowest rank first (leftmost on ties) until no adjacent pair is a token.
    /// `readable` is how many bytes from `base` are valid (the rest of the text), so keys can be loaded by words.
    @inline(__always) func encodePiece(
        _ base: UnsafePointer<UInt8>, _ count: Int, readable: Int, scratch: inout MergeScratch, _ emit: (UInt32) -> Void
    ) {
        let whole = rank(base, count, readable: readable)
        if whole != Self.absent { return emit(whole) }
        scratch.reserve(count)
        if count > Self.longPieceThreshold { return mergeLongPiece(base, count, readable: readable, scratch: &scratch, emit) }
        let starts = scratch.starts
        let ranks = scratch.ranks
        for k in 0..<count - 1 {
            starts[k] = Int32(k)
            ranks[k] = rank(base + k, 2, readable: readable - k)
        }
        starts[count - 1] = Int32(count - 1)
        ranks[count - 1] = Self.absent
        starts[count] = Int32(count)
        ranks[count] = Self.absent
        var length = count + 1
        // The rank of parts k and k+1 merged, when both exist.
        @inline(__always) func pairRank(_ k: Int) -> UInt32 {
            guard k + 2 < length else { return Self.absent }
            let start = Int(starts[k])
            return rank(base + start, Int(starts[k + 2]) - start, readable: readable - start)
        }
        while true {
            var minRank = Self.absent
            var minIndex = 0
            for k in 0..<length - 1 where ranks[k] < minRank {
                minRank = ranks[k]
                minIndex = k
            }
            guard minRank != Self.absent else { break }
            // Part minIndex + 1 joins part minIndex: drop its entry, then re-rank the two pairs that changed.
            let moved = length - minIndex - 2
            (starts + minIndex + 1).update(from: starts + minIndex + 2, count: moved)
            (ranks + minIndex + 1).update(from: ranks + minIndex + 2, count: moved)
            length -= 1
            if minIndex > 0 { ranks[minIndex - 1] = pairRank(minIndex - 1) }
            ranks[minIndex] = pairRank(minIndex)
        }
        for k in 0..<length - 1 {
            let start = Int(starts[k])
            emit(rank(base + start, Int(starts[k + 1]) - start, readable: readable - start))
        }
    }

    /// The same merges over a doubly linked list of parts, taking the lowest (rank, start) pair from a binary heap.
    /// Entries are not removed when a pair changes; a popped entry counts only if its part is alive and still has
    /// that rank, which makes it a current candidate, so the choice equals the linear scan's.
    private func mergeLongPiece(
        _ base: UnsafePointer<UInt8>, _ count: Int, readable: Int, scratch: inout MergeScratch, _ emit: (UInt32) -> Void
    ) {
        // Part k starts at byte k; next[k]/previous[k] link the live parts, count is the end sentinel.
        let ranks = scratch.ranks
        let next = scratch.links
        let previous = scratch.links + count + 1
        let alive = scratch.starts  // 1 alive, 0 merged into its predecessor
        let heap = scratch.heap
        var heapCount = 0

        @inline(__always) func push(_ key: UInt64) {
            var i = heapCount
            heapCount += 1
            while i > 0 {
                let parent = (i - 1) >> 1
                guard heap[parent] > key else { break }
                heap[i] = heap[parent]
                i = parent
            }
            heap[i] = key
        }
        @inline(__always) func pop() -> UInt64 {
            let top = heap[0]
            heapCount -= 1
            let last = heap[heapCount]
            var i = 0
            while true {
                var child = 2 * i + 1
                guard child < heapCount else { break }
                if child + 1 < heapCount && heap[child + 1] < heap[child] { child += 1 }
                guard heap[child] < last else { break }
                heap[i] = heap[child]
                i = child
            }
            heap[i] = last
            return top
        }
        @inline(__always) func pairRank(_ k: Int) -> UInt32 {
            let after = Int(next[k])
            guard after < count else { return Self.absent }
            let end = Int(next[after])
            return rank(base + k, end - k, readable: readable - k)
        }
        for k in 0..<count {
            next[k] = Int32(k + 1)
            previous[k] = Int32(k - 1)
            alive[k] = 1
        }
        for k in 0..<count {
            ranks[k] = k + 1 < count ? rank(base + k, 2, readable: readable - k) : Self.absent
            if ranks[k] != Self.absent { push(UInt64(ranks[k]) << 32 | UInt64(k)) }
        }
        while heapCount > 0 {
            let entry = pop()
            let k = Int(entry & 0xFFFF_FFFF)
            guard alive[k] == 1, UInt64(ranks[k]) == entry >> 32 else { continue }
            let joined = Int(next[k])
            alive[joined] = 0
            let after = Int(next[joined])
            next[k] = Int32(after)
            if after < count { previous[after] = Int32(k) }
            ranks[k] = pairRank(k)
            if ranks[k] != Self.absent { push(UInt64(ranks[k]) << 32 | UInt64(k)) }
            let before = Int(previous[k])
            if before >= 0 {
                ranks[before] = pairRank(before)
                if ranks[before] != Self.absent { push(UInt64(ranks[before]) << 32 | UInt64(before)) }
            }
        }
        var k = 0
        while k < count {
            let end = Int(next[k])
            emit(rank(base + k, end - k, readable: readable - k))
            k = end
        }
    }
}
