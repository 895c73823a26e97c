import NIOCore
import PostgresNIO

/// A one-dimensional array of `count` elements without NULLs, in PostgreSQL's binary form, filled by `append`.
/// postgres-nio's `[String]` encoding went through a generic path per element, from an intermediate array per column.
struct ArrayParameter: PostgresDynamicTypeEncodable {
    let psqlType: PostgresDataType
    var psqlFormat: PostgresFormat { .binary }
    private var bytes: ByteBuffer

    private init(type: PostgresDataType, elementType: PostgresDataType, count: Int, capacity: Int) {
        psqlType = type
        bytes = ByteBuffer()
        bytes.reserveCapacity(20 + capacity)
        bytes.writeInteger(Int32(1))  // dimensions
        bytes.writeInteger(Int32(0))  // no NULLs
        bytes.writeInteger(Int32(bitPattern: elementType.rawValue))
        bytes.writeInteger(Int32(count))
        bytes.writeInteger(Int32(1))  // lower bound
    }

    /// timestamptz[]: elements are microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's epoch).
    init(timestamptz count: Int) { self.init(type: .timestamptzArray, elementType: .timestamptz, count: count, capacity: 12 * count) }
    init(int8 count: Int) { self.init(type: .int8Array, elementType: .int8, count: count, capacity: 12 * count) }
    init(text count: Int) { self.init(type: .textArray, elementType: .text, count: count, capacity: 24 * count) }
    init(uuid count: Int) { self.init(type: .uuidArray, elementType: .uuid, count: count, capacity: 20 * count) }

    mutating func append(_ value: Int64) {
        bytes.writeInteger(Int32(8))
        bytes.writeInteger(value)
    }

    /// A uuid element: its 16 bytes, in order.
    mutating func append(uuid bytes: UnsafeBufferPointer<UInt8>) {
        precondition(bytes.count == 16, "a uuid is 16 bytes")
        self.bytes.writeInteger(Int32(16))
        self.bytes.writeBytes(bytes)
    }

    mutating func append(_ value: String) {
        bytes.writeInteger(Int32(value.utf8.count))
        bytes.writeString(value)
    }

    func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        byteBuffer.writeImmutableBuffer(bytes)
    }
}
