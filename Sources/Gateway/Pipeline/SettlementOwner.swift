import Foundation
import Metering
import Synchronization

/// The one owner of an admitted request's settlement: it holds the draft and the reservation from
/// admission on and makes sure exactly one record is written and the reservation released exactly
/// once, on every path.
///
/// The pipeline and the relay finish it on the paths they see (success, upstream failure or cut,
/// a write that fails). Two paths have no code of theirs running: the client resets the connection
/// while the gateway waits for the upstream (the handler is still awaiting), or after the handler
/// returned its response but before the body started (the body closure never runs). The connection
/// tells the owner it closed (``clientClosed()``), and the owner stops the upstream and, if nobody
/// else is left to do it, writes the record itself. Should a code path still drop the owner without
/// finishing it, `deinit` writes the record as a last resort.
final class SettlementOwner: Sendable {
    enum Phase: Sendable {
        /// Waiting for the upstream's response head, or reading a JSON body before answering.
        case forwarding
        /// The handler returned its response; the body closure has not started.
        case responding
        /// The body closure is relaying; it finishes the owner on every way out.
        case relaying
        case finished
    }

    private struct State {
        var phase: Phase = .forwarding
        var clientGone = false
        /// What stops the upstream work in progress (the request, or the body being read).
        var stopUpstream: (@Sendable () -> Void)?
        /// What the record says if the client leaves while `responding` (built only then).
        var disconnect: (upstreamStatus: Int, meter: UsageMeter?)?
    }

    private let current: Mutex<BillingDraft>
    private let recorder: BillingRecorder
    private let state = Mutex(State())

    init(draft: BillingDraft, recorder: BillingRecorder) {
        self.current = Mutex(draft)
        self.recorder = recorder
    }

    /// What the record will say: the request as routed, updated by the forward stage as it retries or
    /// falls back (the model that serves, its price, the attempts).
    var draft: BillingDraft {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    var reservation: Reservation? { draft.reservation }

    /// Whether the client's connection closed while this request was in progress.
    var isClientGone: Bool { state.withLock { $0.clientGone } }

    /// Registers what stops the upstream if the client leaves now; runs it at once if it already left.
    func onClientGone(stop: @escaping @Sendable () -> Void) {
        let goneAlready = state.withLock { s in
            if s.clientGone { return true }
            s.stopUpstream = stop
            return false
        }
        if goneAlready { stop() }
    }

    /// What a transport registers its stop with.
    var cancellation: UpstreamCancellation { UpstreamCancellation { [self] stop in onClientGone(stop: stop) } }

    /// The handler returns its response now; until the body starts, a client that leaves is recorded
    /// as gone, with the upstream's status and what `meter` holds.
    func responding(upstreamStatus: Int, meter: UsageMeter?) {
        state.withLock { s in
            guard s.phase == .forwarding else { return }
            s.phase = .responding
            s.disconnect = (upstreamStatus, meter)
        }
    }

    /// The body closure has started and takes over finishing. False if the owner already finished (the
    /// client left before the body could start), in which case the body must not write a record.
    func startRelaying() -> Bool {
        state.withLock { s in
            guard s.phase == .responding || s.phase == .forwarding else { return false }
            s.phase = .relaying
            s.disconnect = nil
            return true
        }
    }

    /// The client's connection closed.
    func clientClosed() {
        typealias Disconnect = (upstreamStatus: Int, meter: UsageMeter?)
        let (stop, disconnect) = state.withLock { s -> ((@Sendable () -> Void)?, Disconnect?) in
            guard !s.clientGone else { return (nil, nil) }
            s.clientGone = true
            let stop = s.stopUpstream
            s.stopUpstream = nil
            guard s.phase == .responding, let disconnect = s.disconnect else { return (stop, nil) }
            s.phase = .finished
            s.disconnect = nil
            return (stop, disconnect)
        }
        stop?()
        if let disconnect {
            let orphan = clientGoneRecord(upstreamStatus: disconnect.upstreamStatus, meter: disconnect.meter)
            let recorder = recorder
            let reservation = reservation
            Task { await recorder.recordBestEffort(orphan, reservation: reservation) }
        }
    }

    /// Takes the right to finish: true once, for the first caller.
    private func claim() -> Bool {
        state.withLock { s in
            guard s.phase != .finished else { return false }
            s.phase = .finished
            s.stopUpstream = nil
            s.disconnect = nil
            return true
        }
    }

    /// Records and settles, and returns once the record is durable. Throws if it could not be stored
    /// (the response must then not complete normally). Does nothing if the owner already finished.
    func finish(_ record: BillingRecord) async throws {
        guard claim() else { return }
        try await recorder.record(record, reservation: reservation)
    }

    /// For paths that answer with an error anyway: a failure to store is logged, not thrown.
    func finishBestEffort(_ record: BillingRecord) async {
        guard claim() else { return }
        await recorder.recordBestEffort(record, reservation: reservation)
    }

    /// The record of a request whose client left before anything was relayed: the upstream's status if
    /// it answered, and only what the upstream reported or the gateway counted.
    func clientGoneRecord(upstreamStatus: Int?, meter: UsageMeter?, firstByteAt: Date? = nil) -> BillingRecord {
        draft.finalRecord(
            status: .clientDisconnected, httpStatus: Self.clientClosedRequest, upstreamStatus: upstreamStatus,
            error: "client_disconnected", meter: meter, endedAt: Date(), firstByteAt: firstByteAt)
    }

    /// nginx's status for a request whose client closed the connection before the response was sent.
    static let clientClosedRequest = 499

    deinit {
        let orphan = state.withLock { s -> Bool in
            guard s.phase != .finished else { return false }
            s.phase = .finished
            return true
        }
        guard orphan else { return }
        let record = clientGoneRecord(upstreamStatus: nil, meter: nil)
        let recorder = recorder
        let reservation = reservation
        recorder.orphaned()
        Task { await recorder.recordBestEffort(record, reservation: reservation) }
    }
}
