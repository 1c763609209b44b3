import Logging

/// `StreamLogHandler` with metadata kept as given and formatted only when a message is written.
///
/// `StreamLogHandler` formats its whole metadata dictionary every time one key is set. Hummingbird sets
/// the request id on every request's logger, so with that handler each request paid for a string it
/// almost never printed. This handler holds the metadata and passes it to the stream handler with the
/// message, so the formatting happens only for messages at or above the level.
struct LazyLogHandler: LogHandler {
    private var stream: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(_ stream: StreamLogHandler) { self.stream = stream }

    var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if !metadata.isEmpty {
            event.metadata = metadata.merging(event.metadata ?? [:]) { _, explicit in explicit }
        }
        stream.log(event: event)
    }
}
