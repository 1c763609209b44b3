import Foundation

/// An immutable buffer allocated once and read through a raw pointer, with no bounds checks or
/// reference counting on the hot path. Immutable after `init`, hence safe to share.
///
/// On Linux, buffers of a megabyte or more are asked to live on 2 MiB pages (`MADV_HUGEPAGE`):
/// tokenizer lookups land at random in tables of several megabytes, and on 4 KiB pages nearly every
/// one of them would also miss the TLB. Elsewhere they are ordinary allocations.
final class FrozenBuffer<Element>: @unchecked Sendable {
    let base: UnsafePointer<Element>
    let count: Int

    var buffer: UnsafeBufferPointer<Element> { UnsafeBufferPointer(start: base, count: count) }

    init(_ elements: [Element]) {
        let size = max(MemoryLayout<Element>.stride * elements.count, 1)
        var raw = size >= 1 << 20 ? Self.allocateOnHugePages(size) : nil
        if raw == nil { raw = malloc(size) }
        let p = raw!.bindMemory(to: Element.self, capacity: elements.count)
        _ = UnsafeMutableBufferPointer(start: p, count: elements.count).initialize(from: elements)
        base = UnsafePointer(p)
        count = elements.count
    }

    deinit {
        UnsafeMutablePointer(mutating: base).deinitialize(count: count)
        free(UnsafeMutableRawPointer(mutating: base))
    }

    /// `size` bytes (rounded up to whole 2 MiB pages) aligned to a huge page and advised to use them,
    /// or nil where that is not available; `free` releases them.
    private static func allocateOnHugePages(_ size: Int) -> UnsafeMutableRawPointer? {
        #if os(Linux)
            let huge = 2 << 20
            let rounded = (size + huge - 1) / huge * huge
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, huge, rounded) == 0, let raw else { return nil }
            _ = madvise(raw, rounded, Int32(MADV_HUGEPAGE))
            return raw
        #else
            return nil
        #endif
    }
}
