#if os(Linux)
    import Foundation
    import Glibc

    /// A client on a plain TCP socket, for what an HTTP library will not do: send half a request, stall,
    /// send garbage, or reset the connection (RST) at a chosen moment.
    final class RawClient: @unchecked Sendable {
        private var fd: Int32

        /// `receiveBuffer`: the socket's receive buffer (SO_RCVBUF, set before connecting), to make a client
        /// that stops reading back up the server soon.
        init(port: Int, receiveBuffer: Int32? = nil) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw RawError("socket") }
            if var size = receiveBuffer {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else {
                _ = Glibc.close(fd)
                throw RawError("connect")
            }
        }

        struct RawError: Error {
            var what: String
            init(_ what: String) { self.what = what }
        }

        func send(_ text: String) throws {
            try send(Array(text.utf8))
        }

        func send(_ bytes: [UInt8]) throws {
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw RawError("send") }
                sent += n
            }
        }

        /// Blocking socket calls run on a thread of their own: on the test's cooperative pool (two threads on
        /// a two-core machine) they would starve the in-process gateway's handlers, and on Dispatch's global
        /// pool (about as narrow) the store's queues, which the gateway needs to answer.
        private static func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
            await withCheckedContinuation { continuation in
                Thread { continuation.resume(returning: body()) }.start()
            }
        }

        /// Reads until the peer closes or `timeout` passes; returns what arrived and whether it closed.
        func readAll(timeout: Duration) async -> (bytes: [UInt8], closed: Bool) {
            await Self.blocking { self.readAllNow(timeout: timeout) }
        }

        /// Reads until `marker` has arrived (or `timeout`).
        func read(until marker: String, timeout: Duration) async -> String {
            await Self.blocking { self.readNow(until: marker, timeout: timeout) }
        }

        private func readAllNow(timeout: Duration) -> (bytes: [UInt8], closed: Bool) {
            let deadline = ContinuousClock.now + timeout
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while ContinuousClock.now < deadline {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let left = deadline - ContinuousClock.now
                let ms = Int32(
                    max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
                guard poll(&pfd, 1, ms) > 0 else { continue }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return (out, true) }
                out.append(contentsOf: buffer[0..<n])
            }
            return (out, false)
        }

        private func readNow(until marker: String, timeout: Duration) -> String {
            let deadline = ContinuousClock.now + timeout
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            let needle = Array(marker.utf8)
            while ContinuousClock.now < deadline {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 50) > 0 else { continue }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                out.append(contentsOf: buffer[0..<n])
                // Only the new bytes (and the marker's length before them) can complete it.
                let tail = out.suffix(n + needle.count - 1)
                if out.count >= needle.count, String(decoding: tail, as: UTF8.self).contains(marker) { break }
            }
            return String(decoding: out, as: UTF8.self)
        }

        /// Closes with RST: SO_LINGER with a zero timeout discards the send queue and resets.
        func reset() {
            var option = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
            close()
        }

        /// An orderly close (FIN).
        func close() {
            if fd >= 0 {
                _ = Glibc.close(fd)
                fd = -1
            }
        }

        deinit { close() }

        /// A POST with a JSON body, as one write.
        static func post(_ path: String, key: String, body: String, headers: [(String, String)] = []) -> String {
            var text = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\n"
            text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
            for (name, value) in headers { text += "\(name): \(value)\r\n" }
            return text + "\r\n" + body
        }
    }
#endif
