import NIOCore

/// Deadlines of one connection, checked by scheduled tasks that are never cancelled on the request
/// path: NIO cancels a scheduled task by a linear search of the loop's pending tasks, which with many
/// connections cost more than the request. A check that runs asks its owner what is due (the owner acts
/// on what has passed) and re-arms at the next deadline; a new task is scheduled only when a deadline
/// comes before every pending one, so a connection holds one or two. Lives on `loop`.
final class LazyDeadlineCheck {
    private let loop: any EventLoop
    /// Runs the owner's checks; returns the next deadline to check, or nil for none.
    private let check: () -> NIODeadline?
    private var pending: [(at: NIODeadline, task: Scheduled<Void>)] = []

    init(loop: any EventLoop, check: @escaping () -> NIODeadline?) {
        self.loop = loop
        self.check = check
    }

    /// Makes sure a check runs at `due` or earlier.
    func arm(at due: NIODeadline?) {
        guard let due, !pending.contains(where: { $0.at <= due }) else { return }
        let task = loop.assumeIsolated().scheduleTask(deadline: due) { [weak self] () -> Void in
            self?.run(scheduledAt: due)
        }
        pending.append((due, task))
    }

    private func run(scheduledAt time: NIODeadline) {
        pending.removeAll { $0.at == time }
        arm(at: check())
    }

    /// The connection is closed: its pending checks would only hold it in memory until they ran.
    func stop() {
        for check in pending { check.task.cancel() }
        pending = []
    }
}
