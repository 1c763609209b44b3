import Foundation
import Testing

@testable import Gateway

@Suite("Policy file changes")
struct PolicyReloaderTests {
    @Test("a ConfigMap-style swap of the ..data symlink is a change, though the file's own link never moves")
    func configMapSwap() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-cm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        // The kubelet's layout: prices.yaml -> ..data/prices.yaml, ..data -> ..2026_1 (then ..2026_2).
        for version in ["..2026_1", "..2026_2"] {
            try fm.createDirectory(atPath: dir + "/" + version, withIntermediateDirectories: true)
            try "prices: {}\n".write(toFile: dir + "/\(version)/prices.yaml", atomically: false, encoding: .utf8)
        }
        // Same size, same modification time: only the file behind the links differs.
        let when = Date(timeIntervalSince1970: 1_790_000_000)
        for version in ["..2026_1", "..2026_2"] {
            try fm.setAttributes([.modificationDate: when], ofItemAtPath: dir + "/\(version)/prices.yaml")
        }
        try fm.createSymbolicLink(atPath: dir + "/..data", withDestinationPath: "..2026_1")
        try fm.createSymbolicLink(atPath: dir + "/prices.yaml", withDestinationPath: "..data/prices.yaml")
        let before = try #require(PolicyReloader.FileStamp(path: dir + "/prices.yaml"))
        #expect(PolicyReloader.FileStamp(path: dir + "/prices.yaml") == before)

        // The swap, as the kubelet makes it: a new link renamed over ..data.
        try fm.createSymbolicLink(atPath: dir + "/..data_tmp", withDestinationPath: "..2026_2")
        #expect(rename(dir + "/..data_tmp", dir + "/..data") == 0)
        let after = try #require(PolicyReloader.FileStamp(path: dir + "/prices.yaml"))
        #expect(after != before)
        // The link itself did not change: what the old check looked at.
        let linkDate = try fm.attributesOfItem(atPath: dir + "/prices.yaml")[.modificationDate] as? Date
        #expect(linkDate != nil)
    }
}
