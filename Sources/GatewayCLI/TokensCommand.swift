import ArgumentParser
import Foundation
import Gateway
import Metering

struct TokensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "Count or encode text with the built-in tokenizer.",
        subcommands: [Count.self, Encode.self, Bench.self])

    struct Count: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Count the tokens of a file or of standard input (special-token text is ordinary text, "
                + "but deepseek_v3 matches its added tokens anywhere, as Hugging Face does).")
        @Option(help: "o200k_base, cl100k_base, qwen or deepseek_v3.") var encoding: String
        @Option(help: "Read this file instead of standard input.") var file: String?
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Count each line of standard input, a JSON string, on its own; print one count per line.")
        var lines = false

        func run() throws {
            let enc: TokenEncoding
            do {
                enc = try TokenEncoding.named(encoding)
            } catch {
                throw CLI.fail("\(error)")
            }
            if lines {
                // Used by the differential tests against tiktoken: counting has paths of its own.
                guard file == nil else { throw CLI.fail("--lines reads standard input, not --file") }
                try Encode.forEachLine { print(enc.count($0)) }
                return
            }
            let data =
                try file.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
                ?? FileHandle.standardInput.readDataToEndOfFile()
            let text = String(decoding: data, as: UTF8.self)
            let n = enc.count(text)
            if json {
                print(#"{"encoding":"\#(encoding)","tokens":\#(n),"bytes":\#(data.count)}"#)
            } else {
                print(n)
            }
        }
    }

    /// One JSON string per input line → one JSON array of token ids per output line.
    /// Used by the differential tests against tiktoken.
    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encode JSON-string lines from standard input; print one JSON array of ids per line.")
        @Option(help: "o200k_base, cl100k_base, qwen or deepseek_v3.") var encoding: String

        func run() throws {
            let enc = try TokenEncoding.named(encoding)
            try Self.forEachLine { print("[" + enc.encode($0).map(String.init).joined(separator: ",") + "]") }
        }

        /// Calls `body` with the text of each line of standard input, a JSON string.
        static func forEachLine(_ body: (String) -> Void) throws {
            while let line = readLine(strippingNewline: true) {
                guard let text = (try? JSONReader.parse(line))?.stringValue else {
                    throw CLI.fail("each input line must be a JSON string")
                }
                body(text)
            }
        }
    }

    /// Single-threaded throughput of counting, excluding vocabulary loading (which happens first).
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure single-threaded counting speed on files; prints MB/s per file.")
        @Option(help: "o200k_base, cl100k_base, qwen or deepseek_v3.") var encoding: String
        @Option(help: "Seconds to spend per file (at least one pass).") var seconds: Double = 1
        @Argument(help: "Files to count.") var files: [String]

        func run() throws {
            let enc = try TokenEncoding.named(encoding)
            _ = enc.count("warm up")
            for file in files {
                let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: file)), as: UTF8.self)
                let bytes = text.utf8.count
                var tokens = 0
                let clock = ContinuousClock()
                let start = clock.now
                var best = Duration.seconds(1_000_000)
                repeat {
                    let t0 = clock.now
                    tokens = enc.count(text)
                    best = min(best, clock.now - t0)
                } while clock.now - start < .seconds(seconds)
                // Best pass: the machine's noise only ever adds time.
                let secondsPerPass = Double(best.components.seconds) + Double(best.components.attoseconds) / 1e18
                let mbps = Double(bytes) / secondsPerPass / 1e6
                print(
                    "\(file)\t\(bytes)\t\(tokens)\t\(String(format: "%.1f", mbps))\t\(String(format: "%.2f", secondsPerPass * 1000))"
                )
            }
        }
    }
}
