import Foundation
import Gateway

/// The PostgreSQL the tests run against: `GATEWAY_TEST_DATABASE_URL` when set, else a throwaway cluster
/// this process starts on loopback (`scripts/pg-cluster.sh`) and removes when it exits. Each test gets a
/// database of its own.
enum PostgresTestCluster {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The server's base URL, started on first use.
    static let baseURL: Result<String, HarnessError> = {
        if let url = ProcessInfo.processInfo.environment["GATEWAY_TEST_DATABASE_URL"], !url.isEmpty {
            return .success(url)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-pg-\(UUID().uuidString)").path
        let port = freePort()
        let (status, output) = run(root + "/scripts/pg-cluster.sh", ["start", dir, String(port)])
        guard status == 0, let url = output.split(separator: "\n").last.map(String.init), url.hasPrefix("postgres")
        else { return .failure(HarnessError("could not start a PostgreSQL cluster: \(output)")) }
        clusterDirectory = strdup(dir)
        atexit {
            guard let dir = clusterDirectory else { return }
            _ = PostgresTestCluster.run(
                PostgresTestCluster.root + "/scripts/pg-cluster.sh", ["stop", String(cString: dir)])
        }
        return .success(url)
    }()

    /// A new, empty database, its URL, and what drops it.
    static func freshDatabase() throws -> (url: String, drop: @Sendable () -> Void) {
        let base = try baseURL.get()
        let name = "gw_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let (status, output) = run(
            "/usr/bin/env", ["psql", base, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE \(name)"])
        guard status == 0 else { throw HarnessError("CREATE DATABASE failed: \(output)") }
        guard var parts = URLComponents(string: base) else { throw HarnessError("not a URL: \(base)") }
        parts.path = "/" + name
        let url = parts.string ?? base
        return (
            url,
            {
                _ = run("/usr/bin/env", ["psql", base, "-qc", "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"])
            }
        )
    }

    /// Runs a command through `/bin/sh` and returns its status and output. Not Foundation's `Process`:
    /// its wait did not return here once the script had left a server running in the background.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) -> (Int32, String) {
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gw-run-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let command =
            ([executable] + arguments).map(quoted).joined(separator: " ") + " </dev/null >\(quoted(path)) 2>&1"
        let status = system(command)
        let output = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        return (status == 0 ? 0 : max(1, status >> 8), output)
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Where the cluster this process started lives, for the exit handler (which cannot capture).
nonisolated(unsafe) private var clusterDirectory: UnsafeMutablePointer<CChar>?
