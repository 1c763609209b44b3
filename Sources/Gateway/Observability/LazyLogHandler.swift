import Logging

/// `StreamLogHandler` with metadata kept as given and formatted only when a message is written.
///
/// `StreamLogHandler` formats its whole metadata dictionary every time one key is set. Hummingbird sets
/// the request id on every request's logger, so with that handler each request paid for a string it
/// almost never printed. This handler holds the metadata and passes it to the stream handler with the
/// message, so the formatting happens only for messages at or above the level.
public struct LazyLogHandler: LogHandler {
    private var stream: StreamLogHandler
    public var metadata: Logger.Metadata = [:]

    public init(_ stream: StreamLogHandler) { self.stream = stream }

    public var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        if !metadata.isEmpty {
            event.metadata = metadata.merging(event.metadata ?? [:]) { _, explicit in explicit }
        }
        stream.log(event: event)
    }
}
