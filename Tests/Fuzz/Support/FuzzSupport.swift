// Shared by the fuzz targets (compiled into each target's module, which imports Metering @testable).
import Foundation

@testable import Metering

/// Fails the run with a message libFuzzer shows above the stack (a Swift `precondition` message is
/// dropped in -O builds).
@inline(never)
func check(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    guard !condition() else { return }
    FileHandle.standardError.write(Data("FUZZ CHECK FAILED at \(file):\(line): \(message())\n".utf8))
    abort()
}

/// Reads fuzzer-chosen parameters from the front of the input, like LLVM's FuzzedDataProvider.
struct FuzzInput {
    private(set) var bytes: ArraySlice<UInt8>

    init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size))[...] : []
    }

    mutating func byte() -> UInt8 { bytes.popFirst() ?? 0 }
    mutating func bool() -> Bool { byte() & 1 == 1 }
    mutating func int(below n: Int) -> Int { n <= 1 ? 0 : Int(byte()) % n }
    mutating func pick<T>(_ items: [T]) -> T { items[int(below: items.count)] }

    /// The rest of the input, as bytes.
    mutating func rest() -> [UInt8] {
        defer { bytes = [] }
        return Array(bytes)
    }
}

/// Cuts `count` into consecutive chunks at `cuts` (each taken modulo count + 1, then sorted).
func chunks(of bytes: [UInt8], cuts: [Int]) -> [ArraySlice<UInt8>] {
    let points = cuts.map { $0 % (bytes.count + 1) }.sorted()
    var out: [ArraySlice<UInt8>] = []
    var start = 0
    for p in points + [bytes.count] {
        out.append(bytes[start..<p])
        start = p
    }
    return out
}

func hex(_ bytes: some Sequence<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// The encodings (``TokenEncoding/names``), loaded once (the first load reads and checks a vocabulary).
nonisolated(unsafe) var encodings = [TokenEncoding?](repeating: nil, count: TokenEncoding.names.count)

func encoding(_ i: Int) -> TokenEncoding {
    if let e = encodings[i] { return e }
    let e = try! TokenEncoding.named(TokenEncoding.names[i])
    encodings[i] = e
    return e
}

/// Loads every vocabulary before fuzzing starts, so the first inputs are not timed with the load.
func preloadEncodings() {
    for i in TokenEncoding.names.indices { _ = encoding(i) }
}
