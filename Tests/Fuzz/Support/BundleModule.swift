// Compiled into the Metering module for the fuzz build only (scripts/fuzz.sh). SwiftPM generates
// `Bundle.module` for the package's resources; a plain swiftc build has no resource bundle, so this
// points `Bundle.module` at a directory that holds `vocab/` (the SwiftPM bundle has the same layout):
// $METERING_RESOURCES if set, else Sources/Metering/Resources of the checkout this file is in.
import Foundation

extension Foundation.Bundle {
    static let module: Bundle = {
        let path =
            ProcessInfo.processInfo.environment["METERING_RESOURCES"]
            ?? URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Support
            .deletingLastPathComponent()  // Fuzz
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // checkout
            .appendingPathComponent("Sources/Metering/Resources").path
        guard let bundle = Bundle(path: path) else {
            fatalError("fuzz build: no resource directory at \(path) (set METERING_RESOURCES)")
        }
        return bundle
    }()
}
