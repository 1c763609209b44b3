import NIOCore

/// A reply from the mock provider: the bytes it sends and the timing faults around them.
public struct MockReply: Sendable {
    public var status: Int
    public var contentType: String
    /// Body pieces, sent in order; a non-streamed reply is one piece.
    public var chunks: [ByteBuffer]
    public var isStream: Bool
    public var chunkDelayMilliseconds: Int
    /// Wait before the response headers (a slow upstream).
    public var stallBeforeHeadersMilliseconds: Int
    /// Wait after this many chunks (a stream that goes silent).
    public var stallAfterChunks: Int?
    public var stallMilliseconds: Int
    /// End the connection abruptly after this many chunks.
    public var cutAfterChunks: Int?

    public var fullBody: ByteBuffer {
        var all = ByteBuffer()
        for var c in chunks { all.writeBuffer(&c) }
        return all
    }

    public var contentLength: Int { chunks.reduce(0) { $0 + $1.readableBytes } }
}

/// Raised inside a mock body to end the connection without a clean end of body.
public struct MockStreamCut: Error {}

extension MockReply {
    /// Writes the body with its delays and faults through `write`; throws ``MockStreamCut`` on a cut.
    public func writeBody(_ write: (ByteBuffer) async throws -> Void) async throws {
        var cursor = ChunkCursor(reply: self)
        while let chunk = try await cursor.next() { try await write(chunk) }
    }

    /// Reads the body one chunk at a time, with its delays and faults.
    public struct ChunkCursor: Sendable {
        let reply: MockReply
        var index = 0

        public init(reply: MockReply) { self.reply = reply }

        /// The next chunk, nil after the last; throws ``MockStreamCut`` where the reply is cut.
        public mutating func next() async throws -> ByteBuffer? {
            defer { index += 1 }
            if let cut = reply.cutAfterChunks, index == min(cut, reply.chunks.count) { throw MockStreamCut() }
            guard index < reply.chunks.count else { return nil }
            if let stallAt = reply.stallAfterChunks, index == stallAt, reply.stallMilliseconds > 0 {
                try await Task.sleep(for: .milliseconds(reply.stallMilliseconds))
            }
            if index > 0 && reply.chunkDelayMilliseconds > 0 {
                try await Task.sleep(for: .milliseconds(reply.chunkDelayMilliseconds))
            }
            return reply.chunks[index]
        }
    }
}
