import ArgumentParser
import Foundation
import Metering

struct TokensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "Count or encode text with the built-in tokenizer.",
        subcommands: [Count.self, Encode.self])

    struct Count: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count the tokens of a file or of standard input (special-token text is ordinary text).")
        @Option(help: "o200k_base, cl100k_base or qwen.") var encoding: String
        @Option(help: "Read this file instead of standard input.") var file: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let enc: TokenEncoding
            do {
                enc = try TokenEncoding.named(encoding)
            } catch {
                throw CLI.fail("\(error)")
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
        @Option(help: "o200k_base, cl100k_base or qwen.") var encoding: String

        func run() throws {
            let enc = try TokenEncoding.named(encoding)
            while let line = readLine(strippingNewline: true) {
                guard let text = (try? JSONReader.parse(line))?.stringValue else {
                    throw CLI.fail("each input line must be a JSON string")
                }
                print("[" + enc.encode(text).map(String.init).joined(separator: ",") + "]")
            }
        }
    }
}
