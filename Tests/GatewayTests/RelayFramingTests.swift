import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Gateway

/// The relay frames chunks itself and writes them below NIO's encoder: its bytes must be the encoder's.
@Suite("Relay framing")
struct RelayFramingTests {
    /// What NIO's `HTTPResponseEncoder` writes for one body part of a chunked response.
    private func encoderChunk(_ body: ByteBuffer) throws -> [UInt8] {
        let channel = EmbeddedChannel(handler: HTTPResponseEncoder())
        defer { _ = try? channel.finish() }
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        while try channel.readOutbound(as: IOData.self) != nil {}
        try channel.writeOutbound(HTTPServerResponsePart.body(.byteBuffer(body)))
        var bytes: [UInt8] = []
        while let part = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = part else { continue }
            bytes += buffer.readableBytesView
        }
        return bytes
    }

    @Test("a chunk is framed as NIO's encoder frames it", arguments: [1, 9, 15, 16, 255, 256, 4096, 70_000])
    func chunkMatchesEncoder(size: Int) throws {
        let body = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        var framed = ByteBuffer()
        ClientConnectionHandler.writeChunk(body, into: &framed)
        #expect(Array(framed.readableBytesView) == (try encoderChunk(body)))
    }

    @Test("an empty chunk writes nothing: it would end the body")
    func emptyChunk() {
        var framed = ByteBuffer()
        ClientConnectionHandler.writeChunk(ByteBuffer(), into: &framed)
        #expect(framed.readableBytes == 0)
    }
}
